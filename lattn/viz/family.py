"""Figures of notebook 04: the stages each family member uses, its token→token map with the future veiled, and the
leak profile.

Plain data in (arrays, one dict per mechanism as :class:`~lattn.widgets.family.FamilyExplorer` computes it), figures
out. Knows nothing about models or widgets; the explorers of :mod:`lattn.widgets.family` update :class:`FamilyView`
and :class:`LeakView` in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from . import MAP_CMAP, heatmap, update_heatmap

__all__ = [
    "FUTURE_RGBA",
    "LEAK_FLOOR",
    "OKABE_ITO",
    "STAGE_AXES",
    "FamilyView",
    "LeakView",
    "distinguish",
    "future_shade",
    "row_scaled",
    "stage_overview",
    "token_maps",
]

FUTURE_RGBA = (0.92, 0.92, 0.92, 0.6)  # a light grey veil over the cells a causal model must leave at zero
# Okabe & Ito (2008), colour-blind safe; black last (used for references)
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000")
LINE_STYLES = ("-", "--", "-.", ":")
STAGE_AXES = {  # (x label, y label) of each stage's map; rows are the queries
    "write": ("latent", "token (query)"),
    "gather": ("token", "latent (query)"),
    "broadcast": ("latent", "token (query)"),
    "effective": ("token j (read)", "token i (reads)"),
}
LEAK_FLOOR = 1e-9  # exact zeros are drawn here on the log axis


def future_shade(rows: int, cols: int, offset: int = 0) -> np.ndarray:
    """RGBA (rows, cols, 4): veiled where column j lies in row i's future (j > i + offset), transparent elsewhere.

    ``offset`` places row i at position i + offset (Perceiver AR's latents sit at the last positions).
    """
    i, j = np.indices((rows, cols))
    shade = np.zeros((rows, cols, 4))
    shade[j > i + offset] = FUTURE_RGBA
    return shade


def row_scaled(weights: np.ndarray) -> np.ndarray:
    """(rows, cols) → each row divided by its largest entry, so the late rows of a causal map stay visible."""
    return weights / np.maximum(weights.max(axis=1, keepdims=True), 1e-12)


def veil(ax: Axes, rows: int, cols: int, offset: int = 0):
    """Draw :func:`future_shade` over a (rows, cols) map on ``ax``; returns the image (update with ``set_data``)."""
    extent = (-0.5, cols - 0.5, rows - 0.5, -0.5)
    return ax.imshow(future_shade(rows, cols, offset), aspect="auto", interpolation="nearest", extent=extent, zorder=3)


def distinguish(lines: Sequence[Any]) -> None:
    """Give line artists Okabe–Ito colours and cycling dash styles, so they differ in colour *and* in style."""
    for k, line in enumerate(lines):
        line.set_color(OKABE_ITO[k % len(OKABE_ITO)])
        line.set_linestyle(LINE_STYLES[k % len(LINE_STYLES)])


def _grid(count: int, ncols: int, cell: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    if count < 1:
        raise ValueError("need at least one panel, got none")
    nrows = -(-count // ncols)
    fig = Figure(figsize=(cell[0] * ncols, cell[1] * nrows + 0.5), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, k + 1) for k in range(count)]
    return fig, axes


def stage_overview(states: Sequence[dict[str, Any]], *, ncols: int = 4, mark_future: bool = True) -> Figure:
    """One panel per stage that each mechanism *uses* (no empty panels), each map with its own colorbar.

    ``states``: dicts with ``title``, ``stages`` (the used stage names), ``names`` ({stage: the paper's word}),
    one (rows, cols) array per used stage under its name, and ``gather_offset`` (Perceiver AR's latent positions
    start there; None otherwise) — e.g. ``FamilyExplorer.states(...)``. Perceiver AR's gather map gets the future veil.
    """
    panels = [(s, stage) for s in states for stage in s["stages"]]
    fig, axes = _grid(len(panels), ncols, (3.0, 2.7))
    for ax, (s, stage) in zip(axes, panels):
        data = np.asarray(s[stage], dtype=float)
        paper = s["names"].get(stage, "")
        xlabel, ylabel = STAGE_AXES[stage]
        im = heatmap(data, ax, xlabel=xlabel, ylabel=ylabel, colorbar=False)
        signed = s["key"] == "linformer" and stage == "gather"  # a learned matrix, not a softmax: |·| is drawn
        fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, label="|weight|" if signed else "weight")
        ax.set_title(f"{s['title']}\n{stage}{' = ' + paper if paper else ''}", fontsize=9)
        if mark_future and stage == "gather" and s.get("gather_offset") is not None:
            veil(ax, *data.shape, s["gather_offset"])
    n, m = states[0]["n"], states[0]["m"]
    fig.suptitle(f"only the stages each mechanism uses (N = {n} tokens, M = {m}, head 0; each map on its own scale)")
    return fig


def token_maps(states: Sequence[dict[str, Any]], *, ncols: int = 4, mark_future: bool = True) -> Figure:
    """The token→token map (broadcast @ gather) of each token-mixing mechanism, rows scaled to their largest entry,
    on one shared 0–1 scale; grey veil over the future (the cells a decoder must leave at exactly 0).

    ``states``: dicts with ``title`` and ``effective`` (N, N) (mechanisms whose ``effective`` is None are skipped).
    """
    kept = [s for s in states if s.get("effective") is not None]
    fig, axes = _grid(len(kept), ncols, (3.0, 3.0))
    for ax, s in zip(axes, kept):
        eff = np.abs(np.asarray(s["effective"], dtype=float))
        scaled = row_scaled(eff)
        im = heatmap(scaled, ax, title=s["title"], xlabel="token j (read)", vmax=1.0, colorbar=False, cmap=MAP_CMAP)
        ax.title.set_fontsize(9)
        if ax is axes[0]:
            ax.set_ylabel("token i (reads)")
        if mark_future:
            veil(ax, *scaled.shape)
    fig.colorbar(im, ax=axes, fraction=0.03, pad=0.02, label="|weight| / row max (shared scale)")
    veiled = " — grey: the future, which a decoder must leave at exactly 0" if mark_future else ""
    fig.suptitle(f"how much token i reads of token j{veiled}")
    return fig


class FamilyView:
    """One mechanism's write | gather | broadcast maps and its token→token map (rows scaled to their max), each with
    its own colorbar; unused stages are blanked with a note. Drawn once into ``fig``, updated in place.

    ``update(state)`` with ``title``, ``stages`` (the used stage names), ``names`` ({stage: the paper's word}), ``n``,
    ``m``, one (rows, cols) array or None per stage and ``effective``, ``gather_offset`` (Perceiver AR's latent
    positions start there; None otherwise) and ``mark_future`` (veil the gather and token→token future).
    """

    def __init__(self, fig: Figure) -> None:
        axes = fig.subplots(1, 4, width_ratios=[1, 1.4, 1, 1.3])
        self.axes = dict(zip(STAGE_AXES, axes))
        self.ims, self.notes, self.shades, self.cbars = {}, {}, {}, {}
        for name, ax in self.axes.items():
            xlabel, ylabel = STAGE_AXES[name]
            self.ims[name] = heatmap(np.zeros((2, 2)), ax, xlabel=xlabel, ylabel=ylabel, colorbar=False)
            self.cbars[name] = fig.colorbar(self.ims[name], ax=ax, fraction=0.06, pad=0.02)
            self.notes[name] = ax.text(0.5, 0.5, "", ha="center", va="center", transform=ax.transAxes, fontsize=10)
        for name in ("gather", "effective"):
            self.shades[name] = self.axes[name].imshow(
                np.zeros((2, 2, 4)), aspect="auto", interpolation="nearest", zorder=3
            )
        self.suptitle = fig.suptitle("", fontsize=11)

    def update(self, state: dict[str, Any]) -> None:
        for name, im in self.ims.items():
            data = state[name]
            used = data is not None
            im.set_visible(used)
            self.cbars[name].ax.set_visible(used)
            ax = im.axes
            ax.tick_params(bottom=used, left=used, labelbottom=used, labelleft=used)
            if name == "effective":
                title = "token→token, rows scaled to max" if used else "token→token"
                note = "" if used else "none: the outputs\nare latents, not tokens"
                if used:
                    data = row_scaled(data)
            else:
                paper = state["names"][name]
                title = f"{name}{' = ' + paper if paper else ''}" if used else name
                note = "" if used else "not used"
            ax.set_title(title, fontsize=9)
            self.notes[name].set_text(note)
            if used:
                update_heatmap(im, data)
        for name, shade in self.shades.items():
            data = state[name]
            offset = 0 if name == "effective" else state["gather_offset"]
            show = state["mark_future"] and data is not None and offset is not None
            shade.set_visible(show)
            if show:
                rows, cols = data.shape
                shade.set_data(future_shade(rows, cols, offset))
                shade.set_extent((-0.5, cols - 0.5, rows - 0.5, -0.5))
        used = " + ".join(state["stages"]) or "no latent stage (N×N)"
        self.suptitle.set_text(f"{state['title']}: {used}   (N = {state['n']}, M = {state['m']}, head 0)")


class LeakView:
    """Max |change| of every output position (log scale, exact zeros drawn at :data:`LEAK_FLOOR`) after perturbing
    one token, one line per mechanism, the outputs before that token shaded. Drawn once into ``fig``.

    ``n`` tokens; ``lines`` {key: (label, causal)}: causal ones solid, the others dashed, Okabe–Ito colours in order.
    ``update(state)`` with ``position`` (the perturbed token) and ``profiles`` {key: (positions, change)}.
    """

    def __init__(self, fig: Figure, n: int, lines: dict[str, tuple[str, bool]]) -> None:
        self.ax = ax = fig.add_subplot()
        self.lines = {}
        for k, (key, (label, causal)) in enumerate(lines.items()):
            color = OKABE_ITO[k % len(OKABE_ITO)]
            (self.lines[key],) = ax.semilogy(
                [], [], "-" if causal else "--", color=color, marker="o", ms=4, label=label
            )
        ax.axhline(LEAK_FLOOR, color="0.6", lw=0.8, ls=":")
        ax.text(n - 0.5, LEAK_FLOOR * 2, "exactly 0", ha="right", va="bottom", fontsize=8, color="0.4")
        self.marker = ax.axvline(0, color="0.2", lw=1.5, ls=":")
        # the outputs before the perturbed token: x in data units, y spanning the axes (works on matplotlib ≥ 3.7)
        self.past = Rectangle((-0.5, 0), 0, 1, transform=ax.get_xaxis_transform(), color="0.9", zorder=0)
        ax.add_patch(self.past)
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(LEAK_FLOOR / 3, 30)
        ax.set_xlabel("output position")
        ax.set_ylabel("max |change of the output|")
        ax.legend(fontsize=8, loc="upper left", ncols=2)

    def update(self, state: dict[str, Any]) -> None:
        t = state["position"]
        for key, (positions, change) in state["profiles"].items():
            self.lines[key].set_data(positions, np.maximum(change, LEAK_FLOOR))
        self.marker.set_xdata([t, t])
        self.past.set_width(t)
        self.ax.set_title(
            f"token {t} perturbed: before it (shaded), the causal (solid) lines stay at exactly 0", fontsize=10
        )
