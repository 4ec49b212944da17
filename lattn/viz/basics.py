"""Figures of notebooks 00–01: one head's N×N map beside the N² count, the three latent maps beside the token roles,
and a full map against its best rank-M approximations. Drawing only; the explorers of :mod:`lattn.widgets.attention`
update the same views in place.

* :class:`AttentionMapView` — one head's N×N weights on a fixed 0..1 scale | scores per head against N (N² vs N).
* :class:`LatentMapsRow` — role strip + write (N×M) + gather (M×N) + broadcast (N×M) of one model, one head. Write
  and broadcast rows are distributions over the M latents: a fixed 0..1 scale. Gather rows are distributions over
  the N tokens (uniform = 1/N): its scale is passed in, so the models compared share it.
* :func:`latent_maps_figure` — several such rows (e.g. untrained vs trained) on shared scales.
* :class:`RankView` / :func:`rank_figure` — a full attention map, its best rank-M approximation(s) on the same
  scale, and the singular values with the cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from . import OKABE_ITO, as_array, category_strip, heatmap, update_heatmap

__all__ = ["STAGE_TITLES", "AttentionMapView", "LatentMapsRow", "RankView", "latent_maps_figure", "rank_figure"]

STAGE_TITLES = {  # (title, x label, y label) of each stage's map
    "write": ("write: softmax over latents", "latent", "token (query)"),
    "gather": ("gather: softmax over tokens", "token", "latent (query)"),
    "broadcast": ("broadcast: softmax over latents", "latent", "token (query)"),
}


class AttentionMapView:
    """One head's N×N attention map (a fixed 0..1 scale: sharper rows look brighter) beside the count of scores per
    head against N for N = 2 … ``n_max``, the chosen N marked. Drawn once into ``fig``, updated in place.

    ``update(state)`` with ``map`` (N, N) weights, ``n``, ``scores_per_head`` and ``head``.
    """

    def __init__(self, fig: Figure | SubFigure, n_max: int) -> None:
        ax_map, ax_count = fig.subplots(1, 2, width_ratios=[1.15, 1])
        self.im = heatmap(
            np.zeros((2, 2)), ax_map, xlabel="key token j", ylabel="query token i", vmax=1.0, cbar_label="weight"
        )
        n = np.arange(2, n_max + 1)
        ax_count.plot(n, n**2, color=OKABE_ITO[4], label="N² scores per head")
        ax_count.plot(n, n, color="0.4", ls="--", label="N (linear, for scale)")
        (self.marker,) = ax_count.plot([], [], "o", color=OKABE_ITO[5], ms=8)
        ax_count.set_xlabel("sequence length N")
        ax_count.set_ylabel("scores per head")
        ax_count.legend(loc="upper left", fontsize=8)
        ax_count.set_title("every query scores every key", fontsize=10)

    def update(self, state: dict[str, Any]) -> None:
        weights = state["map"]
        update_heatmap(self.im, weights, vmax=1.0)
        self.im.axes.set_title(f"head {state['head']}: each row sums to 1 (largest {weights.max():.2f})", fontsize=10)
        self.marker.set_data([state["n"]], [state["scores_per_head"]])


class LatentMapsRow:
    """One model's three maps on one example, drawn once into ``fig`` (a Figure or SubFigure), updated in place.

    ``update(state, gather_vmax)`` with ``state``: ``role`` (N,) and ``write`` (N, M), ``gather`` (M, N),
    ``broadcast`` (N, M), each possibly None (hidden). Columns of the gather map carry the role colours on top, so
    all three maps line up with the roles.
    """

    def __init__(self, fig: Figure | SubFigure) -> None:
        role_ax, *axes = fig.subplots(1, 4, width_ratios=[0.07, 1, 1.5, 1])
        self.role_ax = role_ax
        self.role_im = category_strip(np.zeros(2), role_ax, title="role")
        role_ax.set_ylabel("token")
        self.axes: dict[str, Axes] = dict(zip(STAGE_TITLES, axes))
        self.ims = {}
        for s, ax in self.axes.items():
            _, xlabel, ylabel = STAGE_TITLES[s]
            self.ims[s] = heatmap(np.zeros((2, 2)), ax, xlabel=xlabel, ylabel=ylabel, vmax=1.0, colorbar=False)
            ax.tick_params(labelsize=8)
        strip_ax = self.axes["gather"].inset_axes((0.0, 1.01, 1.0, 0.05), sharex=self.axes["gather"])
        self.gather_roles = category_strip(np.zeros(2), strip_ax, title="", vertical=False)
        strip_ax.tick_params(labelbottom=False, bottom=False)
        fig.colorbar(self.ims["gather"], ax=self.axes["gather"], fraction=0.05, pad=0.02, label="gather weight")
        fig.colorbar(self.ims["broadcast"], ax=[self.axes["write"], self.axes["broadcast"]], fraction=0.03,
                     pad=0.02, label="write / broadcast weight")  # fmt: skip

    def update(self, state: dict[str, Any], gather_vmax: float) -> None:
        role = as_array(state["role"])
        update_heatmap(self.role_im, role[:, None] % 8, vmax=7)
        update_heatmap(self.gather_roles, role[None, :] % 8, vmax=7)
        self.gather_roles.axes.set_visible(state["gather"] is not None)
        for s, im in self.ims.items():
            data = state[s]
            im.set_visible(data is not None)
            pad = 14 if s == "gather" else 6  # room for the role strip above the gather map
            im.axes.set_title(STAGE_TITLES[s][0] if data is not None else f"{s}: hidden", fontsize=10, pad=pad)
            if data is not None:
                update_heatmap(im, data, vmax=gather_vmax if s == "gather" else 1.0)


def latent_maps_figure(
    states: Sequence[dict[str, Any]], row_titles: Sequence[str], *, width: float = 10.0, row_height: float = 3.3
) -> Figure:
    """One :class:`LatentMapsRow` per state (≤ 3 rows), stacked; gather on one scale shared by all rows."""
    if not 1 <= len(states) <= 3 or len(row_titles) != len(states):
        raise ValueError(f"need 1-3 states with one title each, got {len(states)} states, {len(row_titles)} titles")
    gather_vmax = max(float(as_array(s["gather"]).max()) for s in states if s["gather"] is not None)
    fig = Figure(figsize=(width, row_height * len(states)), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(states), 1, hspace=0.04))
    for sub, state, title in zip(subfigs, states, row_titles):
        LatentMapsRow(sub).update(state, gather_vmax)
        sub.suptitle(title, fontsize=11, fontweight="bold")
    return fig


class RankView:
    """Full map | best rank-M approximation (same colour scale) | singular values with the cut after M.

    ``full`` (N, N) weights, ``sv`` (N,) its singular values. ``update(approx, m, error)``. Both maps share the scale
    min..max of the full map (trained maps can be close to uniform, and a 0-based scale would hide their structure);
    approximations outside that range are clipped.
    """

    def __init__(self, fig: Figure | SubFigure, full: Any, sv: Any) -> None:
        ax_full, ax_low, ax_sv = fig.subplots(1, 3, width_ratios=[1, 1, 1.1])
        self.vmin, self.vmax = _range(full)
        heatmap(full, ax_full, title=f"full attention: weights {self.vmin:.3f}–{self.vmax:.3f}", xlabel="key", ylabel="query",
                vmin=self.vmin, vmax=self.vmax, colorbar=False)  # fmt: skip
        self.im = heatmap(full, ax_low, xlabel="key", vmin=self.vmin, vmax=self.vmax, colorbar=False)
        fig.colorbar(self.im, ax=[ax_full, ax_low], fraction=0.04, pad=0.02, label="weight (one scale for both)")
        sv = as_array(sv)
        k = np.arange(1, len(sv) + 1)
        ax_sv.semilogy(k, np.maximum(sv, 1e-12), ".-", color="0.25")
        self.cut = ax_sv.axvline(1.5, color="#D55E00", lw=2, label="kept | dropped")
        ax_sv.set_xlabel("singular value index")
        ax_sv.set_ylabel("singular value")
        ax_sv.set_title("rank M keeps those left of the line", fontsize=10)
        ax_sv.grid(alpha=0.3)

    def update(self, approx: Any, m: int, error: float) -> None:
        update_heatmap(self.im, approx, vmax=self.vmax, vmin=self.vmin)
        self.im.axes.set_title(f"best rank {m}: {100 * error:.1f} % error", fontsize=10)
        self.cut.set_xdata([m + 0.5, m + 0.5])


def _range(a: Any) -> tuple[float, float]:
    a = as_array(a)
    return float(a.min()), max(float(a.max()), float(a.min()) + 1e-12)


def rank_figure(full: Any, sv: Any, approxes: Sequence[tuple[int, Any, float]]) -> Figure:
    """A full map beside its best rank-m approximations ``[(m, approx (N, N), relative error), …]`` (≤ 4), all on one
    colour scale, and the singular values with a line after each m."""
    if not 1 <= len(approxes) <= 4:
        raise ValueError(f"need 1-4 approximations, got {len(approxes)}")
    full = as_array(full)
    vmin, vmax = _range(full)
    fig = Figure(figsize=(2.3 * (len(approxes) + 1) + 3.0, 3.2), layout="constrained")
    axes = fig.subplots(1, len(approxes) + 2, width_ratios=[1] * (len(approxes) + 1) + [1.4])
    heatmap(
        full,
        axes[0],
        title=f"full: weights {vmin:.3f}–{vmax:.3f}",
        xlabel="key",
        ylabel="query",
        vmin=vmin,
        vmax=vmax,
        colorbar=False,
    )
    for ax, (m, approx, err) in zip(axes[1:], approxes):
        im = heatmap(approx, ax, title=f"rank {m}: {100 * err:.1f} % error", xlabel="key", vmin=vmin, vmax=vmax,
                     colorbar=False)  # fmt: skip
    fig.colorbar(im, ax=list(axes[:-1]), fraction=0.02, pad=0.01, label="weight (one scale for all maps)")
    sv, ax_sv = as_array(sv), axes[-1]
    ax_sv.semilogy(np.arange(1, len(sv) + 1), np.maximum(sv, 1e-12), ".-", color="0.25")
    for i, (m, _, _) in enumerate(approxes):
        ax_sv.axvline(m + 0.5, color="#D55E00", lw=1.5, ls=("-", "--", "-.", ":")[i], label=f"cut after {m}")
    ax_sv.set_xlabel("singular value index")
    ax_sv.set_ylabel("singular value")
    ax_sv.set_title("singular values: one dominates", fontsize=10)
    ax_sv.legend(fontsize=8)
    ax_sv.grid(alpha=0.3)
    for ax in axes:
        ax.tick_params(labelsize=8)
    return fig
