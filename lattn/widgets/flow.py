"""Explorer of the flow view: follow one token (or latent) through write, gather and broadcast of a latent model.

A thin shell over :mod:`lattn.viz.flow`: the model runs once (``return_maps=True``); the controls pick what the
view highlights, and all weights → line widths happen in ``viz``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..viz.diagram import layout
from ..viz.flow import draw_flow, flow_summary, flow_title, flow_weights, update_flow
from .base import Explorer

__all__ = ["FlowExplorer"]

NONE = -1  # the dropdown value meaning "nothing selected" / "mean over heads"


class FlowExplorer(Explorer):
    """Token ↔ latent links of one sequence, each as wide as its attention weight; a token's or a latent's links
    highlighted.

    Args:
        model: takes ``(x, return_maps=True)`` and returns ``(output, LatentMaps)`` — a
            :class:`~lattn.latent.LatentAttention`, a tagger built on one, …
        x: one sequence, (1, N, D) or (N, D).
        token_labels: N names for the tokens (default x₀ … x_{N−1}, numbered from 0 like the code).
        token, latent, head: what the first picture selects (0-based; None = nothing / the mean over heads).
    Controls: ``token`` and ``latent`` (index or −1 = none), ``head`` (index or −1 = mean), ``stage`` ("all" or one).
    """

    figsize = (10.3, 3.9)
    dpi = 110

    def __init__(
        self,
        model: nn.Module,
        x: Tensor,
        *,
        token_labels: Sequence[str] | None = None,
        token: int | None = None,
        latent: int | None = None,
        head: int | None = None,
    ) -> None:
        if not isinstance(x, Tensor) or x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[0] != 1):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be one sequence, (1, N, D) or (N, D), got {got}")
        with torch.no_grad():
            out = model(x if x.dim() == 3 else x[None], return_maps=True)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"model(x, return_maps=True) must return (output, maps), got {type(out).__name__}")
        self.maps, self.token_labels = out[1], token_labels
        weights = flow_weights(self.maps)  # validates the maps; (n_query, n_key) per stage
        self.stage_names = list(weights)
        n, m = weights["gather"].shape[::-1] if "gather" in weights else next(iter(weights.values())).shape
        self.layout = layout(self.stage_names, n, m, token_labels=token_labels)
        self.heads = next(getattr(self.maps, s) for s in self.stage_names).shape[1]
        for arg, idx, count in (("token", token, n), ("latent", latent, m), ("head", head, self.heads)):
            if idx is not None and not (isinstance(idx, int) and 0 <= idx < count):
                raise ValueError(f"{arg} must be an int in 0 … {count - 1} or None, got {idx!r}")
        self._initial = {c: NONE if v is None else v for c, v in (("token", token), ("latent", latent), ("head", head))}
        self.figsize = (3.4 * len(self.stage_names) + 0.2, 3.9)
        super().__init__()

    def controls(self) -> dict[str, W.Widget]:
        lay = self.layout
        return {
            "token": W.Dropdown(options=[("none", NONE), *((s, i) for i, s in enumerate(lay.token_labels))],
                                value=self._initial["token"], description="token"),
            "latent": W.Dropdown(options=[("none", NONE), *((s, j) for j, s in enumerate(lay.latent_labels))],
                                 value=self._initial["latent"], description="latent"),
            "head": W.Dropdown(options=[("mean", NONE), *((f"head {h}", h) for h in range(self.heads))],
                               value=self._initial["head"], description="head"),
            "stage": W.Dropdown(options=["all", *self.stage_names], value="all", description="stage"),
        }  # fmt: skip

    def compute(self) -> dict[str, Any]:
        pick = {c: (None if getattr(self, c).value == NONE else getattr(self, c).value) for c in ("token", "latent")}
        head = None if self.head.value == NONE else self.head.value
        weights = flow_weights(self.maps, head=head)
        shown = None if self.stage.value == "all" else (self.stage.value,)
        named = {s: w for s, w in weights.items() if shown is None or s in shown}  # the title names shown stages only
        return {
            "weights": weights,
            **pick,
            "head": head,
            "shown": shown,
            "title": flow_title(named, self.layout, head=head, **pick),
            "summary": flow_summary(named, self.layout, **pick),
        }

    def setup(self, fig: Figure) -> None:
        self.art = draw_flow(self.maps, token_labels=self.token_labels, ax=fig.add_subplot())

    def draw(self, state: dict[str, Any]) -> None:
        update_flow(self.art, state["weights"], token=state["token"], latent=state["latent"], shown=state["shown"],
                    title=state["title"])  # fmt: skip

    def describe(self, state: dict[str, Any]) -> str:
        picked = ", ".join(f"{c}={getattr(self, c).label}" for c in ("token", "latent", "head", "stage"))
        return f"{picked}; {state['summary'] or 'nothing selected'}"
