"""Figures of notebook 04: the stages each family member uses, its token→token map with the future veiled, the
leak profile, and extra tokens *inside* one attention (window + global tokens, registers) as one joint mask.

Plain data in (arrays, one dict per mechanism as :class:`~lattn.widgets.family.FamilyExplorer` computes it), figures
out. Knows nothing about models or widgets; the explorers of :mod:`lattn.widgets.family` update :class:`FamilyView`
and :class:`LeakView` in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import FuncFormatter
from matplotlib.transforms import Bbox

from . import MAP_CMAP, as_array, heatmap, update_heatmap
from .diagram import COLORS, MARKERS, SUB, as_diagram, draw_stages

__all__ = [
    "FUTURE_RGBA",
    "LEAK_FLOOR",
    "OKABE_ITO",
    "STAGE_AXES",
    "FamilyView",
    "LeakView",
    "distinguish",
    "future_shade",
    "joint_attention",
    "reach_profiles",
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
        offset = s.get("gather_offset") if stage == "gather" else None
        if offset is not None:  # latents that are positions: label the rows with them
            ax.set_yticks(range(data.shape[0]), [str(offset + i) for i in range(data.shape[0])])
            ax.set_ylabel("latent at position p")
            if mark_future:
                veil(ax, *data.shape, offset)
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


def reach_profiles(profiles: dict[str, np.ndarray], *, query: int = 0, window: int | None = None) -> Figure:
    """How strongly output ``query`` depends on each token j, one line per model (log scale; exact zeros drawn on the
    dotted floor at :data:`LEAK_FLOOR`); tokens within ``window`` of the query shaded.

    ``profiles``: {label: (N,) ‖∂y_query/∂x_j‖}, e.g. row ``query`` of :func:`lattn.analysis.dependence`.
    """
    if not profiles:
        raise ValueError("profiles must hold at least one model")
    fig = Figure(figsize=(8.0, 3.6), layout="constrained")
    ax = fig.add_subplot()
    n = len(next(iter(profiles.values())))
    lines = [ax.semilogy(np.arange(n), np.maximum(np.asarray(p, dtype=float), LEAK_FLOOR), marker="o", ms=4,
                         label=label)[0] for label, p in profiles.items()]  # fmt: skip
    distinguish(lines)
    if window is not None:
        ax.axvspan(query - window - 0.5, query + window + 0.5, color="0.9", zorder=0)
        ax.text(query + window + 0.4, 3, f"window ±{window}", ha="right", va="bottom", fontsize=8, color="0.35")
    ax.axhline(LEAK_FLOOR, color="0.6", lw=0.8, ls=":")
    ax.text(n - 0.5, LEAK_FLOOR * 2, "exactly 0: no path", ha="right", va="bottom", fontsize=8, color="0.4")
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(LEAK_FLOOR / 3, 30)
    ax.set_xlabel("token j")
    ax.set_ylabel(f"‖∂ output {query} / ∂ token j‖")
    ax.legend(fontsize=8, loc="upper right", ncols=2)
    ax.set_title(f"how far output {query} reaches: one window + global layer stops at the window", fontsize=10)
    return fig


def joint_attention(allowed: Any, num_extra: int, *, symbol: str = "g", name: str = "global tokens", query: int = 0,
                    title: str = "") -> Figure:  # fmt: skip
    """Extra tokens *inside* one attention layer: its (E + N)² bool mask over [extras; tokens] (left; e.g.
    :func:`lattn.masks.local_global_mask`) and the same layer as key → query links under **one** softmax band (right):
    each query normalises tokens and extras together, in one step. Token ``query``'s row is outlined in red."""
    mask, g = as_array(allowed) > 0, num_extra
    size, row = mask.shape[0], num_extra + query
    labels = [f"{symbol}{str(i).translate(SUB)}" for i in range(g)] + [f"x{str(j).translate(SUB)}" for j in range(size - g)]  # fmt: skip
    kind = mask.astype(int)
    kind[:g] *= 2
    kind[:, :g] *= 2  # 2 = a link that involves an extra token (rows or columns of the extras), 1 = token ↔ token
    fig = Figure(figsize=(11.0, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.0, 1.7))
    cmap = ListedColormap(["white", "#9ECAE9", COLORS["latents"]])
    left.imshow(np.minimum(kind, 2), cmap=cmap, vmin=0, vmax=2, interpolation="nearest")
    left.set_xticks(range(size), labels, fontsize=7)
    left.set_yticks(range(size), labels, fontsize=7)
    left.axhline(g - 0.5, color="0.3", lw=1)
    left.axvline(g - 0.5, color="0.3", lw=1)
    left.add_patch(Rectangle((-0.5, row - 0.5), size, 1, fill=False, edgecolor=COLORS["focus"], lw=2))
    left.set(xlabel="key (read)", ylabel="query (reads)")
    kinds = [("#9ECAE9", "token ↔ token"), (COLORS["latents"], f"involves {name}"), ("white", "not computed")]
    left.legend(handles=[Patch(facecolor=c, edgecolor="0.5", label=t) for c, t in kinds], loc="upper center",
                bbox_to_anchor=(0.5, -0.13), ncols=3, fontsize=7, frameon=False)  # fmt: skip
    left.set_title(f"one mask over [{name}; tokens]: {int(mask.sum())} of {size}² scores", fontsize=10)
    xs = np.linspace(0, 1, size)
    q_idx, k_idx = np.nonzero(mask)
    segments = np.stack([np.c_[xs[k_idx], np.zeros(len(k_idx))], np.c_[xs[q_idx], np.ones(len(q_idx))]], 1)
    focus = q_idx == row
    right.add_collection(LineCollection(segments[~focus], colors="0.6", lw=0.7, alpha=0.6))
    right.add_collection(LineCollection(segments[focus], colors=COLORS["focus"], lw=1.8))
    right.fill_between([-0.04, 1.04], -0.07, 0.07, color="0.5", alpha=0.15, lw=0)
    right.text(1.05, 0.0, "softmax", ha="left", va="center", fontsize=8, style="italic", color="0.25")
    right.text(0.5, -0.32, f"ONE softmax per query, over every key its row of the mask allows: tokens and {name} alike",
               ha="center", va="center", fontsize=9, style="italic", color="0.25")  # fmt: skip
    for y in (0.0, 1.0):
        for side, part in (("latents", slice(0, g)), ("tokens", slice(g, size))):
            right.scatter(xs[part], np.full(len(xs[part]), y), s=70, marker=MARKERS[side], c=COLORS[side], zorder=3)
        for x, label in zip(xs, labels):
            right.text(x, y + (0.1 if y else -0.13), label, ha="center", va="center", fontsize=8)
    right.text(-0.06, 0.0, "keys", ha="right", va="center", fontsize=9, weight="bold")
    right.text(-0.06, 1.0, "queries", ha="right", va="center", fontsize=9, weight="bold")
    right.set(xlim=(-0.2, 1.16), ylim=(-0.42, 1.25))
    right.set_axis_off()
    right.set_title(f"the same layer as links ({labels[row]}'s in red)", fontsize=10)
    fig.suptitle(title or f"{name} inside one attention layer: one mask, one softmax, all at once", fontsize=11)
    return fig


class _Absent:
    """Stands in for the artist of a map a mechanism does not have: invisible, and its text says why."""

    def __init__(self, name: str) -> None:
        self.name = name

    def get_visible(self) -> bool:
        return False

    def get_text(self) -> str:
        return "none: the outputs are latents, not tokens" if self.name == "effective" else "not used"


class FamilyView:
    """One mechanism's maps, *only those it has*, left to right: the stages it uses (write | gather | broadcast), then
    its token→token map (rows scaled to their max) when its outputs are tokens — each with its own colorbar. The slots
    left over show the mechanism's schematic (:func:`lattn.viz.diagram.draw_stages`) when it fits, else a one-line
    note of the stages it does not use: no empty panels. Drawn once into ``fig`` (four slots), updated in place.

    ``update(state)`` with ``title``, ``stages`` (the used stage names), ``names`` ({stage: the paper's word}), ``n``,
    ``m``, one (rows, cols) array or None per stage and ``effective``, ``gather_offset`` (Perceiver AR's latent
    positions start there; None otherwise), ``mark_future`` (veil the gather and token→token future) and
    ``diagram`` (a :data:`~lattn.viz.diagram.PRESETS` name or None). ``shown`` lists the maps in slot order.
    """

    SLOTS = 4

    def __init__(self, fig: Figure) -> None:
        axes = fig.subplots(1, self.SLOTS)  # equal slots: any map may land in any slot
        engine = fig.get_layout_engine()
        if engine is not None and hasattr(engine, "set"):
            engine.set(wspace=0.1)  # room for a colorbar's tick labels and the next slot's y label
        self.slots: list[dict[str, Any]] = []
        for ax in axes:
            im = heatmap(np.zeros((2, 2)), ax, colorbar=False)
            shade = ax.imshow(np.zeros((2, 2, 4)), aspect="auto", interpolation="nearest", zorder=3)
            cbar = fig.colorbar(im, ax=ax, fraction=0.06, pad=0.02)
            note = ax.text(0.5, 0.5, "", ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)
            self.slots.append({"ax": ax, "im": im, "shade": shade, "cbar": cbar, "note": note})
        self.diagram_ax = fig.add_axes((0, 0, 1, 1))
        self.diagram_ax.set_in_layout(False)
        self.diagram_ax.set_visible(False)
        self.free: list[int] = []
        self.diagram_ax.set_axes_locator(self._free_box)
        self.shown: tuple[str, ...] = ()
        self.suptitle = fig.suptitle("", fontsize=11)

    def _free_box(self, ax: Axes, renderer: Any) -> Any:
        """At draw time: the box covering the free slots (axes and colorbars), where the schematic goes."""
        boxes = [
            box
            for k in self.free
            for box in (self.slots[k]["ax"].get_position(), self.slots[k]["cbar"].ax.get_position())
        ]
        return Bbox.union(boxes) if boxes else Bbox.from_bounds(0, 0, 0.01, 0.01)  # hidden when nothing is free

    # per-map views (stage name or "effective" → the artist of the slot showing it); a map the mechanism does not
    # have gets an :class:`_Absent` stand-in that is invisible and says why
    def _by_name(self, part: str) -> dict[str, Any]:
        return {
            name: self.slots[self.shown.index(name)][part] if name in self.shown else _Absent(name)
            for name in STAGE_AXES
        }

    @property
    def ims(self) -> dict[str, Any]:
        return self._by_name("im")

    @property
    def axes(self) -> dict[str, Any]:
        return self._by_name("ax")

    @property
    def notes(self) -> dict[str, Any]:
        return self._by_name("note")

    @property
    def shades(self) -> dict[str, Any]:
        return self._by_name("shade")

    def shade_visible(self, name: str) -> bool:
        """Whether the future veil is drawn over the map ``name`` ("gather" or "effective")."""
        return name in self.shown and self.slots[self.shown.index(name)]["shade"].get_visible()

    def update(self, state: dict[str, Any]) -> None:
        shown = [s for s in STAGE_AXES if s != "effective" and state[s] is not None]
        if state["effective"] is not None:
            shown.append("effective")
        self.shown = tuple(shown)
        for k, slot in enumerate(self.slots):
            name = shown[k] if k < len(shown) else None
            ax, im = slot["ax"], slot["im"]
            ax.set_visible(name is not None)
            slot["cbar"].ax.set_visible(name is not None)
            if name is None:
                continue
            ax.set_axis_on()
            im.set_visible(True)
            slot["note"].set_text("")
            data = row_scaled(state[name]) if name == "effective" else state[name]
            update_heatmap(im, data)
            xlabel, ylabel = STAGE_AXES[name]
            shift = state["gather_offset"] if name == "gather" and state["gather_offset"] is not None else 0
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos, s=shift: f"{v + s:g}"))  # AR: positions
            ax.set_xlabel(xlabel)
            ax.set_ylabel("latent at position p" if shift else ylabel)
            paper = state["names"].get(name, "") if name != "effective" else ""
            title = (
                "token→token, rows scaled to max" if name == "effective" else name + (f" = {paper}" if paper else "")
            )
            ax.set_title(title, fontsize=9)
            offset = 0 if name == "effective" else state["gather_offset"] if name == "gather" else None
            veiled = state["mark_future"] and offset is not None
            slot["shade"].set_visible(veiled)
            if veiled:
                rows, cols = data.shape
                slot["shade"].set_data(future_shade(rows, cols, offset))
                slot["shade"].set_extent((-0.5, cols - 0.5, rows - 0.5, -0.5))
        self._fill_free(state, len(shown))
        used = " + ".join(state["stages"]) or "no latent stage (N×N)"
        self.suptitle.set_text(f"{state['title']}: {used}   (N = {state['n']}, M = {state['m']}, head 0)")

    def _fill_free(self, state: dict[str, Any], used: int) -> None:
        """The schematic over the free slots when it fits (one slot per stage), else a note in the first free one."""
        self.free = list(range(used, self.SLOTS))
        name = state.get("diagram")
        fits = bool(self.free) and name is not None and len(as_diagram(name).stages) <= len(self.free)
        self.diagram_ax.set_visible(fits)
        if fits:
            self.diagram_ax.clear()
            draw_stages(name, min(state["n"], 12), min(state["m"], 6), ax=self.diagram_ax, title="")
            return
        if self.free:  # too little room for the picture: say what is missing instead of leaving a blank panel
            slot = self.slots[self.free[0]]
            slot["ax"].set_visible(True)
            slot["ax"].set_axis_off()
            missing = [s for s in ("write", "gather", "broadcast") if state[s] is None]
            slot["note"].set_text("not used:\n" + ", ".join(missing) if missing else "")
            slot["im"].set_visible(False)
            slot["shade"].set_visible(False)
            slot["ax"].set_title("")


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
