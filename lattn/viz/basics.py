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
* :func:`hero_figure` — the three-stage diagram of :mod:`lattn.viz.diagram` with each stage's update rule under it.
* :func:`dependence_figure` — the layer's token→token dependence ‖∂y_i/∂x_j‖ beside each head's effective map.
* :func:`sensitivity_figure` — how far one token's output moves when token j changes, one line per layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from . import OKABE_ITO, as_array, category_strip, heatmap, update_heatmap
from .diagram import draw_stages, figsize

__all__ = [
    "STAGE_TITLES",
    "AttentionMapView",
    "LatentMapsRow",
    "RankView",
    "dependence_figure",
    "hero_figure",
    "latent_maps_figure",
    "rank_error_figure",
    "rank_figure",
    "sensitivity_figure",
]

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

    ``full`` (N, N) weights, ``sv`` (N,) its singular values. ``update(approx, m, error, full=None, sv=None, name="")``
    (a new ``full``/``sv`` switches the map shown). Both maps share the scale min..max of the full map (trained maps
    can be close to uniform, and a 0-based scale would hide their structure); approximations outside it are clipped.
    The singular values span the same four decades below the largest for every map, so spectra compare at a glance.
    """

    def __init__(self, fig: Figure | SubFigure, full: Any, sv: Any) -> None:
        ax_full, ax_low, ax_sv = fig.subplots(1, 3, width_ratios=[1, 1, 1.1])
        self.full_im = heatmap(full, ax_full, xlabel="key", ylabel="query", colorbar=False)
        self.im = heatmap(full, ax_low, xlabel="key", colorbar=False)
        fig.colorbar(self.im, ax=[ax_full, ax_low], fraction=0.04, pad=0.02, label="weight (one scale for both)")
        (self.sv_line,) = ax_sv.semilogy([], [], ".-", color="0.25")
        self.cut = ax_sv.axvline(1.5, color="#D55E00", lw=2, label="kept | dropped")
        ax_sv.set_xlabel("singular value index")
        ax_sv.set_ylabel("singular value")
        ax_sv.set_title("rank M keeps those left of the line", fontsize=10)
        ax_sv.grid(alpha=0.3)
        self._set_full(full, sv, "")

    def _set_full(self, full: Any, sv: Any, name: str) -> None:
        self.vmin, self.vmax = _range(full)
        update_heatmap(self.full_im, full, vmin=self.vmin, vmax=self.vmax)
        lead = f"{name}: " if name else "full map: "
        self.full_im.axes.set_title(f"{lead}weights {self.vmin:.3f}–{self.vmax:.3f}", fontsize=10)
        sv = np.maximum(as_array(sv), 1e-12)
        self.sv_line.set_data(np.arange(1, len(sv) + 1), sv)
        self.sv_line.axes.set_xlim(0, len(sv) + 1)
        # the same four decades below the largest for every map: a flat spectrum looks flat, a fast fall looks steep
        self.sv_line.axes.set_ylim(sv.max() * 5e-5, sv.max() * 2)

    def update(self, approx: Any, m: int, error: float, *, full: Any = None, sv: Any = None, name: str = "") -> None:
        if full is not None:
            self._set_full(full, sv, name)
        update_heatmap(self.im, approx, vmax=self.vmax, vmin=self.vmin)
        self.im.axes.set_title(f"best rank {m}: {100 * error:.1f} % error", fontsize=10)
        self.cut.set_xdata([m + 0.5, m + 0.5])


def rank_error_figure(errors: dict[str, Any], *, marks: Sequence[int] = ()) -> Figure:
    """Best rank-M error against M, one line per map ``{name: (K + 1,) errors for M = 0 … K}`` (see
    :func:`lattn.analysis.rank_errors`); dotted verticals at ``marks`` (e.g. the M of the trained models)."""
    fig = Figure(figsize=(7.0, 3.3), layout="constrained")
    ax = fig.add_subplot()
    for (name, e), color, marker in zip(errors.items(), OKABE_ITO[4:] + OKABE_ITO, "os^Dv"):
        e = as_array(e)
        ax.plot(np.arange(len(e)), 100 * e, marker=marker, ms=3, color=color, label=name)
    for m in marks:
        ax.axvline(m, color="0.6", ls=":", lw=1)
    ax.set_xlabel("M (rank of the bottleneck)")
    ax.set_ylabel("best rank-M error (%)")
    ax.set_ylim(0, 102)
    ax.set_title("how much of each map M latents could keep at best (Eckart–Young)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


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
    ax_sv.set_title("singular values: rank m keeps those left of its line", fontsize=10)
    ax_sv.legend(fontsize=8)
    ax_sv.grid(alpha=0.3)
    for ax in axes:
        ax.tick_params(labelsize=8)
    return fig


# Each stage's rule in the code's symbols (one head; the output projection to_out is left out): A = the stage's map,
# Q/K/V = the projections of tokens x or latents z.
UPDATE_RULES = {
    "write": (r"$A^{w} = \mathrm{softmax}_{\mathrm{latents}}(Q_x K_z^{\top} / \sqrt{d})$",
              r"$z \leftarrow z + \tilde{A}^{w\top} V_x$,  $\tilde{A}^{w}_{j\ell} = A^{w}_{j\ell}\, /\, \Sigma_i A^{w}_{i\ell}$"),
    "gather": (r"$A^{g} = \mathrm{softmax}_{\mathrm{tokens}}(Q_z K_x^{\top} / \sqrt{d})$",
               r"$z \leftarrow z + A^{g} V_x$"),
    "broadcast": (r"$A^{b} = \mathrm{softmax}_{\mathrm{latents}}(Q_x K_z^{\top} / \sqrt{d})$",
                  r"$y = A^{b} V_z$"),
}  # fmt: skip


def hero_figure(n_tokens: int = 8, n_latents: int = 3) -> Figure:
    """The three stages of latent attention (who queries whom, the softmax axis shaded, the flow direction) with each
    stage's update rule under its panel (output projections left out)."""
    w, h = figsize(3, height=4.1)
    fig = Figure(figsize=(w, h), layout="constrained")
    art = draw_stages("latent", n_tokens, n_latents, ax=fig.add_subplot())
    for p in art.layout.panels:
        score, update = UPDATE_RULES[p.stage.name]
        art.ax.text(p.x0 + 0.5, -0.62, score, ha="center", va="top", fontsize=9)
        art.ax.text(p.x0 + 0.5, -0.86, update, ha="center", va="top", fontsize=9, color="#D55E00")
    art.ax.set_ylim(-1.08, 1.85)
    art.title.set_text("latent attention in one layer: tokens never score each other (one head, to_out left out)")
    return fig


def dependence_figure(dependence: Any, effective: Any, *, role: Any = None) -> Figure:
    """The layer's dependence ‖∂y_i/∂x_j‖ (N, N), each row divided by its sum, beside each head's effective map
    broadcast @ gather (H, N, N), whose rows sum to 1 too: one colour scale for all panels, 0 … the largest entry of
    the effective maps (larger dependence shares, e.g. on the diagonal, are clipped: the colorbar's arrow).
    ``role`` (N,) colours a strip of token groups on the left."""
    dep, eff = as_array(dependence), as_array(effective)
    if dep.ndim != 2 or eff.ndim != 3 or eff.shape[1:] != dep.shape:
        raise ValueError(f"need dependence (N, N) and effective (H, N, N), got {dep.shape} and {eff.shape}")
    share = dep / np.maximum(dep.sum(-1, keepdims=True), 1e-30)  # (N, N): rows sum to 1
    H, vmax = eff.shape[0], float(eff.max())
    fig = Figure(figsize=(3.3 * (H + 1) + 1.2, 3.5), layout="constrained")
    ratios = ([0.06] if role is not None else []) + [1] * (H + 1)
    axes = list(fig.subplots(1, len(ratios), width_ratios=ratios))
    if role is not None:
        category_strip(role, axes.pop(0), title="role").axes.set_ylabel("token i")
    im = heatmap(share, axes[0], title="layer: ‖∂y_i/∂x_j‖ / row sum\n(every path, every head)",
                 xlabel="input token j", vmax=vmax, colorbar=False)  # fmt: skip
    for h, ax in enumerate(axes[1:]):
        heatmap(eff[h], ax, title=f"head {h}: broadcast @ gather\n(gather→broadcast path only)", xlabel="token j",
                vmax=vmax, colorbar=False)  # fmt: skip
    fig.colorbar(im, ax=axes, fraction=0.03, pad=0.01, extend="max", label="share of row i (one scale)")
    for ax in axes:
        ax.tick_params(labelsize=8)
    return fig


def sensitivity_figure(moves: dict[str, Any], *, token: int = 0, window: int | None = None) -> Figure:
    """How far token ``token``'s output moves when token j changes, against j: one line per layer ``{name: (N,)}``,
    on a log scale from a decade below the smallest move to the decade above the largest (0, and rounding noise below
    1e-6 of the largest move, drawn at the bottom edge); the window's edge marked when given."""
    fig = Figure(figsize=(7.5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    values = {name: as_array(m) for name, m in moves.items()}
    noise = 1e-6 * max(float(v.max()) for v in values.values())  # float32 rounding, not a move (differs by CPU)
    smallest = min(float(v[v > noise].min()) for v in values.values() if (v > noise).any())
    floor = 10.0 ** np.floor(np.log10(smallest) - 1)  # a decade: the axis does not move with the last bits
    top = 10.0 ** np.ceil(np.log10(max(float(v.max()) for v in values.values())))
    for (name, v), color, marker in zip(values.items(), OKABE_ITO[4:] + OKABE_ITO, "os^Dv"):
        ax.semilogy(np.arange(len(v)), np.where(v > noise, v, floor), marker=marker, ms=4, color=color, label=name)
    if window is not None:
        ax.axvspan(token + window + 0.5, max(len(v) for v in values.values()) - 0.5, color="0.9", zorder=0,
                   label=f"beyond ±{window} of token {token}")  # fmt: skip
    ax.set_ylim(floor * 0.8, top)
    ax.set_xlabel("changed token j")
    ax.set_ylabel(f"‖Δ output of token {token}‖ (log)")
    ax.set_title(f"change one token j: how far does token {token}'s output move?", fontsize=10)
    ax.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        title="0 or rounding noise: bottom edge",
        title_fontsize=8,
    )
    ax.grid(alpha=0.3, which="both")
    return fig
