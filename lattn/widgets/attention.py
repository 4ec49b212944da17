"""Explorers of notebooks 00 and 01: the N×N map of standard attention, the three latent maps, the bottleneck.

Thin shells: the maths comes from :mod:`lattn.attention`, :mod:`lattn.latent` and :mod:`lattn.analysis`; the
drawing from :mod:`lattn.viz`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from ..analysis import low_rank, singular_values
from ..attention import MultiHeadAttention, scaled_dot_product
from ..latent import STAGES
from ..tasks import Batch
from ..viz import as_array, heatmap, update_heatmap
from .base import Explorer

__all__ = ["AttentionExplorer", "LatentExplorer", "RankExplorer"]

ROLE_CMAP = "tab10"


def _slider(description: str, lo: int, hi: int, value: int, step: int = 1) -> W.IntSlider:
    return W.IntSlider(value=value, min=lo, max=hi, step=step, description=description, continuous_update=False)


class AttentionExplorer(Explorer):
    """One head's N×N attention map over the first N tokens of a sequence, and the N² count of scores.

    Args: ``mha`` a :class:`~lattn.attention.MultiHeadAttention`; ``tokens`` (1, N_max, dim).
    Controls: ``n`` (sequence length), ``head``, ``temperature`` (divides the scores), ``causal``.
    """

    figsize = (9.0, 3.6)

    def __init__(self, mha: MultiHeadAttention, tokens: Tensor) -> None:
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
        q, k, v = self.mha.project(self.tokens[:, :n])  # (1, H, n, dh)
        scale = 1.0 / (math.sqrt(q.shape[-1]) * t)
        _, w = scaled_dot_product(q[0, h], k[0, h], v[0, h], causal=self.causal.value, scale=scale)  # (n, n)
        return {"map": as_array(w), "n": n, "scores_per_head": n * n}

    def setup(self, fig: Figure) -> None:
        ax_map, ax_count = fig.subplots(1, 2, width_ratios=[1.15, 1])
        self.im = heatmap(np.zeros((2, 2)), ax_map, xlabel="key token j", ylabel="query token i")
        n = np.arange(2, self.tokens.shape[1] + 1)
        ax_count.plot(n, n**2, color="0.3", label="N² scores per head")
        ax_count.plot(n, n, color="0.7", ls="--", label="N (linear, for scale)")
        (self.marker,) = ax_count.plot([], [], "o", color="crimson", ms=8)
        ax_count.set_xlabel("sequence length N")
        ax_count.set_ylabel("scores per head")
        ax_count.legend(loc="upper left", fontsize=8)
        ax_count.set_title("every query scores every key", fontsize=10)

    def draw(self, state: dict[str, Any]) -> None:
        update_heatmap(self.im, state["map"])
        self.im.axes.set_title(
            f"head {self.head.value}: weights, rows sum to 1 (max {state['map'].max():.2f})", fontsize=10
        )
        self.marker.set_data([state["n"]], [state["scores_per_head"]])

    def describe(self, state: dict[str, Any]) -> str:
        return f"{super().describe(state)}, scores={state['scores_per_head']}, max weight={state['map'].max():.2f}"


def _maps_of(model: nn.Module, x: Tensor) -> Any:
    """Run a model that accepts ``return_maps=True`` and return its maps (the second element)."""
    return model(x, return_maps=True)[1]


class LatentExplorer(Explorer):
    """The write, gather and broadcast maps of latent models on one example, tokens coloured by their role.

    Args:
        models: ``{"untrained": {M: model}, "trained": {M: model}}``; a model takes ``(x, return_maps=True)`` and
            returns ``(output, LatentMaps)`` (a :class:`~lattn.train.Tagger` or a ``LatentAttention``).
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
    def compute(self) -> dict[str, Any]:
        batch = self.sample(self.n.value)
        maps = _maps_of(self.models[self.model.value][self.m.value], batch.x)
        h = self.head.value
        state: dict[str, Any] = {"role": as_array(batch.role[0])}
        for s in STAGES:
            m = getattr(maps, s)
            shown = m is not None and getattr(self, f"show_{s}").value
            state[s] = as_array(m[0, min(h, m.shape[1] - 1)]) if shown else None  # a 1-head model shows head 0
        return state

    def setup(self, fig: Figure) -> None:
        axes = fig.subplots(1, 4, width_ratios=[0.12, 1, 1.6, 1])
        self.role_ax, self.stage_axes = axes[0], dict(zip(STAGES, axes[1:]))
        self.role_im = self.role_ax.imshow(
            np.zeros((2, 1)), cmap=ROLE_CMAP, vmin=0, vmax=9, aspect="auto", interpolation="nearest"
        )
        self.role_ax.set_title("role", fontsize=9)
        self.role_ax.set_xticks([])
        self.role_ax.set_ylabel("token")
        labels = {
            "write": ("latent", "token (query)"),
            "gather": ("token", "latent (query)"),
            "broadcast": ("latent", "token (query)"),
        }
        self.ims = {
            s: heatmap(np.zeros((2, 2)), ax, xlabel=labels[s][0], ylabel=labels[s][1], colorbar=False)
            for s, ax in self.stage_axes.items()
        }

    def draw(self, state: dict[str, Any]) -> None:
        update_heatmap(self.role_im, state["role"][:, None], vmax=9)
        for s, im in self.ims.items():
            data = state[s]
            im.set_visible(data is not None)
            axis = {
                "write": "softmax over latents",
                "gather": "softmax over tokens",
                "broadcast": "softmax over latents",
            }[s]
            im.axes.set_title(f"{s}: {axis}" if data is not None else f"{s}: hidden", fontsize=10)
            if data is not None:  # rows of write/broadcast are distributions over M: a fixed 0..1 scale
                update_heatmap(im, data, vmax=None if s == "gather" else 1.0)

    def describe(self, state: dict[str, Any]) -> str:
        shown = [s for s in STAGES if state[s] is not None]
        return (
            f"model={self.model.value}, M={self.m.value}, N={self.n.value}, head={self.head.value}, "
            f"shown={'+'.join(shown) or 'none'}"
        )


class RankExplorer(Explorer):
    """A full N×N attention map beside its best rank-M approximation: what any M-latent bottleneck can keep at most.

    Args: ``full_map`` (N, N) attention weights (e.g. of a trained full-attention model).
    Controls: ``m`` (the rank, i.e. number of latents).
    """

    figsize = (10.5, 3.4)

    def __init__(self, full_map: Tensor) -> None:
        self.full_map = full_map.detach()
        self.sv = as_array(singular_values(self.full_map))
        super().__init__()

    def controls(self) -> dict[str, W.Widget]:
        n = self.full_map.shape[0]
        return {"m": _slider("M latents", 1, n, min(4, n))}

    def compute(self) -> dict[str, Any]:
        approx, err = low_rank(self.full_map, self.m.value)
        return {"approx": as_array(approx), "error": err, "m": self.m.value}

    def setup(self, fig: Figure) -> None:
        ax_full, ax_low, ax_sv = fig.subplots(1, 3, width_ratios=[1, 1, 1.2])
        vmax = float(self.full_map.max())
        heatmap(
            self.full_map,
            ax_full,
            title="full attention (rank N)",
            xlabel="key",
            ylabel="query",
            colorbar=False,
            vmax=vmax,
        )
        self.im = heatmap(self.full_map, ax_low, xlabel="key", colorbar=False, vmax=vmax, vmin=None)
        k = np.arange(1, len(self.sv) + 1)
        ax_sv.semilogy(k, np.maximum(self.sv, 1e-12), ".-", color="0.3")
        self.cut = ax_sv.axvline(1, color="crimson", lw=2)
        ax_sv.set_xlabel("singular value index")
        ax_sv.set_title("what is kept (left of the line)", fontsize=10)

    def draw(self, state: dict[str, Any]) -> None:
        update_heatmap(self.im, state["approx"], vmax=float(self.full_map.max()), vmin=0.0)
        self.im.axes.set_title(f"best rank {state['m']}: error {100 * state['error']:.1f} %", fontsize=10)
        self.cut.set_xdata([state["m"] + 0.5, state["m"] + 0.5])

    def describe(self, state: dict[str, Any]) -> str:
        return f"M={state['m']}, relative error={100 * state['error']:.1f} %"
