"""Explorers of notebooks 00 and 01: the N×N map of standard attention, the three latent maps, the bottleneck.

Thin shells: the maths comes from :mod:`lattn.attention`, :mod:`lattn.latent` and :mod:`lattn.analysis`; the
drawing from :mod:`lattn.viz`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as W
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..analysis import low_rank, rank_errors, singular_values
from ..attention import MultiHeadAttention, scaled_dot_product
from ..latent import STAGES
from ..tasks import Batch
from ..viz import as_array, map_grid
from ..viz.basics import (
    AttentionMapView,
    LatentMapsRow,
    RankView,
    latent_maps_figure,
    rank_error_figure,
    rank_figure,
)
from .base import Explorer

__all__ = ["AttentionExplorer", "LatentExplorer", "RankExplorer"]


def _slider(description: str, lo: int, hi: int, value: int, step: int = 1) -> W.IntSlider:
    return W.IntSlider(value=value, min=lo, max=hi, step=step, description=description, continuous_update=False)


class AttentionExplorer(Explorer):
    """One head's N×N attention map over the first N tokens of a sequence, and the N² count of scores.

    Args: ``mha`` a :class:`~lattn.attention.MultiHeadAttention`; ``tokens`` (1, N_max, dim).
    Controls: ``n`` (sequence length), ``head``, ``temperature`` (divides the scores), ``causal``.
    State: ``map`` (N, N), ``n``, ``scores_per_head`` (N²), ``head``; the figure is :attr:`view` (a
    :class:`~lattn.viz.basics.AttentionMapView`).
    """

    figsize = (9.0, 3.6)

    def __init__(self, mha: MultiHeadAttention, tokens: Tensor) -> None:
        if not isinstance(mha, MultiHeadAttention):
            hint = " (for latent attention's maps use LatentExplorer)" if hasattr(mha, "num_latents") else ""
            raise TypeError(
                f"mha must be a lattn.MultiHeadAttention, whose N×N maps this explorer draws; got "
                f"{type(mha).__name__}{hint}"
            )
        if not isinstance(tokens, Tensor) or tokens.dim() != 3 or tokens.shape[0] != 1 or tokens.shape[1] < 2:
            got = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            fix = " — add the batch axis: tokens[None]" if isinstance(tokens, Tensor) and tokens.dim() == 2 else ""
            raise ValueError(f"tokens must be one sequence of at least 2 tokens, shape (1, N, D), got {got}{fix}")
        if tokens.shape[-1] != mha.dim:
            raise ValueError(
                f"tokens must have the module's width D = {mha.dim}, got shape {tuple(tokens.shape)}: build "
                f"MultiHeadAttention({tokens.shape[-1]}, heads) or pass tokens of width {mha.dim}"
            )
        self.mha, self.tokens = mha, tokens
        super().__init__()

    def controls(self) -> dict[str, W.Widget]:
        n_max = self.tokens.shape[1]
        return {
            "n": _slider("N tokens", 2, n_max, min(16, n_max)),
            "head": _slider("head", 0, self.mha.heads - 1, 0),
            "temperature": W.FloatLogSlider(
                value=1.0, base=10, min=-1, max=1, step=0.1, description="temperature", continuous_update=False
            ),
            "causal": W.Checkbox(value=False, description="causal"),
        }

    @torch.no_grad()
    def compute(self) -> dict[str, Any]:
        n, h, t = self.n.value, self.head.value, self.temperature.value
        q, k, v = self.mha.project(self.tokens[:, :n])  # (1, H, n, d_head)
        scale = 1.0 / (math.sqrt(q.shape[-1]) * t)
        _, w = scaled_dot_product(q[0, h], k[0, h], v[0, h], causal=self.causal.value, scale=scale)  # (n, n)
        return {"map": as_array(w), "n": n, "scores_per_head": n * n, "head": h}

    def setup(self, fig: Figure) -> None:
        self.view = AttentionMapView(fig, self.tokens.shape[1])
        self.im = self.view.im

    def draw(self, state: dict[str, Any]) -> None:
        self.view.update(state)

    def describe(self, state: dict[str, Any]) -> str:
        return f"{super().describe(state)}, scores={state['scores_per_head']}, max weight={state['map'].max():.2f}"

    def figure(self, settings: Sequence[dict[str, Any]], titles: Sequence[str], ncols: int = 2) -> Figure:
        """Static fallback: the map at each setting (≤ 8), on the explorer's fixed 0..1 scale with one colorbar."""
        maps = [st["map"] for st in self.states_at(list(settings))]
        titles = [f"{t} (largest {m.max():.2f})" for t, m in zip(titles, maps)]
        grid = [maps[i : i + ncols] for i in range(0, len(maps), ncols)]
        return map_grid(grid, titles=[titles[i : i + ncols] for i in range(0, len(titles), ncols)], ticks=True,
                        xlabel="key token j", ylabel="query token i", cell=3.2, vmax=1.0)  # fmt: skip


def _maps_of(model: nn.Module, x: Tensor) -> Any:
    """Run a model that accepts ``return_maps=True`` and return its maps (the second element)."""
    return model(x, return_maps=True)[1]


class LatentExplorer(Explorer):
    """The write, gather and broadcast maps of latent models on one example, tokens coloured by their role.

    Args:
        models: ``{"untrained": {M: model}, "trained": {M: model}}``; a model takes ``(x, return_maps=True)`` and
            returns ``(output, LatentMaps)`` (a :class:`~lattn.tagger.Tagger` or a ``LatentAttention``).
        sample: ``n → Batch`` with one sequence (x (1, n, D), role (1, n)).
    Controls: ``model``, ``m`` (latents), ``n`` (tokens), ``head``, ``show_write``/``show_gather``/``show_broadcast``.
    """

    figsize = (10.5, 3.8)

    def __init__(
        self,
        models: Mapping[str, Mapping[int, nn.Module]],
        sample: Callable[[int], Batch],
        n_range: tuple[int, int] = (8, 64),
        heads: int = 1,
    ) -> None:
        usage = 'a mapping {"untrained": {M: model}, "trained": {M: model}} (each model returns (out, LatentMaps))'
        if not isinstance(models, Mapping) or not models:
            raise ValueError(f"models must be {usage}, got {models!r}")
        for kind, by_m in models.items():
            if not isinstance(by_m, Mapping) or not by_m or not all(isinstance(m, int) for m in by_m):
                raise ValueError(f"models[{kind!r}] must map each M (an int) to a model, as in {usage}; got {by_m!r}")
        if not callable(sample):
            raise TypeError(f"sample must be a function n → Batch with one sequence, got {type(sample).__name__}")
        self.models, self.sample, self.n_range, self.heads = models, sample, n_range, heads
        super().__init__()

    def controls(self) -> dict[str, W.Widget]:
        kinds = list(self.models)
        ms = sorted(self.models[kinds[-1]])
        lo, hi = self.n_range
        return {
            "model": W.Dropdown(options=kinds, value=kinds[-1], description="model"),
            "m": W.SelectionSlider(
                options=ms, value=ms[len(ms) // 2], description="M latents", continuous_update=False
            ),
            "n": _slider("N tokens", lo, hi, min(max(32, lo), hi), step=4),
            "head": _slider("head", 0, self.heads - 1, 0),
            **{f"show_{s}": W.Checkbox(value=True, description=f"show {s}") for s in STAGES},
        }

    @torch.no_grad()
    def _maps(self, kind: str, batch: Batch) -> dict[str, Any]:
        """The maps of model ``kind`` at the current M and head (a 1-head model shows head 0)."""
        maps = _maps_of(self.models[kind][self.m.value], batch.x)
        h = self.head.value
        return {
            s: None
            if getattr(maps, s) is None
            else as_array(getattr(maps, s)[0, min(h, getattr(maps, s).shape[1] - 1)])
            for s in STAGES
        }

    def compute(self) -> dict[str, Any]:
        batch = self.sample(self.n.value)
        every = {kind: self._maps(kind, batch) for kind in self.models if self.m.value in self.models[kind]}
        # gather rows spread over N tokens (uniform = 1/N): one scale for all models, so switching models compares
        gather_vmax = max([float(m["gather"].max()) for m in every.values() if m["gather"] is not None] or [1.0])
        shown = {s: every[self.model.value][s] if getattr(self, f"show_{s}").value else None for s in STAGES}
        return {"role": as_array(batch.role[0]), **shown, "gather_vmax": gather_vmax}

    def setup(self, fig: Figure) -> None:
        self.view = LatentMapsRow(fig)
        self.ims = self.view.ims

    def draw(self, state: dict[str, Any]) -> None:
        self.view.update(state, state["gather_vmax"])

    def describe(self, state: dict[str, Any]) -> str:
        shown = [s for s in STAGES if state[s] is not None]
        return (
            f"model={self.model.value}, M={self.m.value}, N={self.n.value}, head={self.head.value}, "
            f"shown={'+'.join(shown) or 'none'}"
        )

    def figure(self, settings: Sequence[dict[str, Any]], titles: Sequence[str]) -> Figure:
        """Static fallback: one row of maps per setting (≤ 3), gather on one scale shared by the rows."""
        return latent_maps_figure(self.states_at(list(settings)), titles)


class RankExplorer(Explorer):
    """Full N×N attention maps beside their best rank-M approximation: what a rank-M path can keep at most.

    Args: ``maps`` one (N, N) map or ``{name: (N, N) map}`` (e.g. a trained full-attention map, a local band, a
    permutation) — maps with flat spectra need many more latents than a near-rank-1 one.
    Controls: ``m`` (the rank, i.e. number of latents) and ``map`` (which map).
    """

    figsize = (10.5, 3.4)

    def __init__(self, maps: Tensor | Mapping[str, Tensor]) -> None:
        named = {"full map": maps} if isinstance(maps, Tensor) else dict(maps)
        shapes = {tuple(a.shape) for a in named.values()}
        if not named or len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"maps must be (N, N) tensors of one shape, got shapes {sorted(shapes)}")
        self.maps = {name: a.detach() for name, a in named.items()}
        self.sv = {name: singular_values(a) for name, a in self.maps.items()}  # (N,) float64 each
        self.full_map = next(iter(self.maps.values()))
        super().__init__()

    def controls(self) -> dict[str, W.Widget]:
        n = self.full_map.shape[0]
        names = list(self.maps)
        return {
            "m": _slider("M latents", 1, n, min(4, n)),
            "map": W.Dropdown(options=names, value=names[0], description="map"),
        }

    def compute(self) -> dict[str, Any]:
        name = self.map.value
        approx, err = low_rank(self.maps[name], self.m.value)
        return {"approx": as_array(approx), "error": err, "m": self.m.value, "name": name}

    def setup(self, fig: Figure) -> None:
        self.view = RankView(fig, self.full_map, as_array(next(iter(self.sv.values()))))
        self.im = self.view.im
        self._shown = None

    def draw(self, state: dict[str, Any]) -> None:
        name = state["name"]
        switch = {"full": self.maps[name], "sv": as_array(self.sv[name]), "name": name} if name != self._shown else {}
        self.view.update(state["approx"], state["m"], state["error"], **switch)
        self._shown = name

    def describe(self, state: dict[str, Any]) -> str:
        return f"map={state['name']}, M={state['m']}, relative error={100 * state['error']:.1f} %"

    def figure(self, ms: Sequence[int]) -> Figure:
        """Static fallback: the current map beside its best rank-m approximations for each m in ``ms`` (≤ 4)."""
        a = self.maps[self.map.value]
        return rank_figure(a, self.sv[self.map.value], [(m, *low_rank(a, m)) for m in ms])

    def error_figure(self, marks: Sequence[int] = ()) -> Figure:
        """Static fallback: the best rank-M error of every map against M (dotted lines at ``marks``)."""
        return rank_error_figure({name: rank_errors(sv) for name, sv in self.sv.items()}, marks=marks)
