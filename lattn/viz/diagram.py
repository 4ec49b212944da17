"""Token ↔ latent diagrams drawn from code: who queries whom, over which axis the softmax runs, and — in the flow
view — how much weight each link carries in a real model (like bertviz's line view, for tokens ↔ latents).

* :class:`Stage`, :class:`Diagram` and :data:`PRESETS` — what a schematic shows, as data (defined in
  :mod:`lattn.viz.diagram_data`, re-exported here).
* :func:`layout` — pure geometry: node positions and each stage's edge list (testable without drawing).
* :func:`draw_stages` — the schematic; it returns its artists, which :mod:`lattn.viz.flow` restyles with a real
  model's attention weights (line widths and opacity; the flow view).

Every panel puts tokens on the bottom row and latents on the top row (a token↔token stage: keys below, queries
above); the grey arrow at a panel's left says which way the information flows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.text import Text

from . import new_axes
from .diagram_data import ATTENTION, BROADCAST, GATHER, LATENT_SELF, PRESETS, SIDES, STAGES, WRITE, Diagram, Stage

__all__ = [  # the data names are re-exported from .diagram_data, so older imports keep working
    "ATTENTION",
    "BROADCAST",
    "GATHER",
    "LATENT_SELF",
    "PRESETS",
    "SIDES",
    "STAGES",
    "WRITE",
    "Diagram",
    "DiagramArtists",
    "Panel",
    "Stage",
    "draw_stages",
    "figsize",
    "layout",
]

# Okabe–Ito colours (colour-blind safe): tokens blue squares, latents orange circles, focus vermillion
COLORS = {"tokens": "#0072B2", "latents": "#E69F00", "focus": "#D55E00", "edge": "#4D4D4D", "muted": "#BBBBBB"}
MARKERS = {"tokens": "s", "latents": "o"}
SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
PANEL_GAP = 0.65  # blank data units between panels (room for the softmax label and the row names)


@dataclass(frozen=True)
class Panel:
    """The geometry of one stage. Rows: ``bottom``/``top`` side names, node x positions (data units) at y 0 / 1.
    Edges (E of them): ``query``/``key`` indices into the stage's (n_query, n_key) map and ``segments`` (E, 2, 2),
    each [source (x, y), receiver (x, y)]."""

    stage: Stage
    x0: float
    bottom: str
    top: str
    bottom_x: np.ndarray
    top_x: np.ndarray
    query: np.ndarray
    key: np.ndarray
    segments: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(n_query, n_key): the shape of this stage's attention map."""
        n = {self.bottom: len(self.bottom_x), self.top: len(self.top_x)}  # a row talking to itself: equal counts
        return n[self.stage.query], n[self.stage.key]

    def touches(self, side: str, index: int) -> np.ndarray:
        """(E,) bool: the edges that start or end at node ``index`` of ``side``."""
        hit = np.zeros(len(self.query), dtype=bool)
        if self.stage.query == side:
            hit |= self.query == index
        if self.stage.key == side:
            hit |= self.key == index
        return hit


@dataclass(frozen=True)
class Layout:
    """All panels of a diagram, left to right, plus the node labels."""

    panels: tuple[Panel, ...]
    token_labels: tuple[str, ...]
    latent_labels: tuple[str, ...]
    title: str = ""
    latent_row: str = "latents"

    @property
    def width(self) -> float:
        return len(self.panels) * (1 + PANEL_GAP)


def as_diagram(stages: str | Diagram | Sequence[Stage | str]) -> Diagram:
    """A preset name, a :class:`Diagram`, or a list of :class:`Stage` / stage names ("write", "gather", …)."""
    if isinstance(stages, Diagram):
        return stages
    if isinstance(stages, str):
        if stages not in PRESETS:
            raise ValueError(f"unknown diagram {stages!r}; presets are {sorted(PRESETS)}")
        return PRESETS[stages]
    out = []
    for s in stages:
        if isinstance(s, str) and s not in STAGES:
            raise ValueError(f"unknown stage {s!r}; choose from {list(STAGES)} or pass a Stage")
        if not isinstance(s, (str, Stage)):
            raise TypeError(f"stages must hold Stage objects or stage names, got {type(s).__name__}")
        out.append(STAGES[s] if isinstance(s, str) else s)
    if not out:
        raise ValueError("stages must not be empty")
    return Diagram(tuple(out))


def _labels(labels: Sequence[str] | None, n: int, symbol: str, arg: str) -> tuple[str, ...]:
    if labels is None:
        return tuple(f"{symbol}{str(i).translate(SUB)}" for i in range(n))  # 0-based, as the code indexes
    if len(labels) != n:
        raise ValueError(f"{arg} must have {n} entries, got {len(labels)}")
    return tuple(str(s) for s in labels)


def _spread(n: int, span: float) -> np.ndarray:
    return np.full(1, 0.5) if n == 1 else np.linspace(0.5 - span / 2, 0.5 + span / 2, n)


def layout(
    stages: str | Diagram | Sequence[Stage | str],
    n_tokens: int,
    n_latents: int,
    *,
    token_labels: Sequence[str] | None = None,
    latent_labels: Sequence[str] | None = None,
) -> Layout:
    """Geometry of a diagram with N tokens and M latents: one :class:`Panel` per stage, edges obeying the masks."""
    for arg, n in (("n_tokens", n_tokens), ("n_latents", n_latents)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"{arg} must be an int ≥ 1, got {n!r}")
    d = as_diagram(stages)
    N, M = int(n_tokens), int(n_latents)
    if d.latents_at not in ("spread", "last") or (d.latents_at == "last" and M > N):
        raise ValueError(f"latents_at must be 'spread' or 'last' (with M ≤ N), got {d.latents_at!r} with M={M}, N={N}")
    tok_x = _spread(N, 1.0)
    pos = {"tokens": np.arange(N)}
    if d.latents_at == "last":
        lat_x, pos["latents"] = tok_x[N - M :], np.arange(N - M, N)
    else:
        lat_x = _spread(M, min(1.0, max(0.55, (M - 1) / max(N - 1, 1))))
    xs, count = {"tokens": tok_x, "latents": lat_x}, {"tokens": N, "latents": M}
    panels = []
    for k, st in enumerate(d.stages):
        x0 = k * (1 + PANEL_GAP)
        if (st.causal or st.window is not None) and not all(s in pos for s in (st.query, st.key)):
            raise ValueError(f"stage {st.name!r} is masked by position: the latents need positions (latents_at='last')")
        q, kk = np.meshgrid(np.arange(count[st.query]), np.arange(count[st.key]), indexing="ij")
        q, kk = q.ravel(), kk.ravel()
        keep = np.ones(len(q), dtype=bool)
        if st.causal or st.window is not None:
            qp, kp = pos[st.query][q], pos[st.key][kk]
            src, dst = (kp, qp) if st.receiver == st.query else (qp, kp)
            if st.causal:
                keep &= src <= dst
            if st.window is not None:
                keep &= np.abs(src - dst) <= st.window
        q, kk = q[keep], kk[keep]
        # rows: tokens below, latents above; a row talking to itself has its keys below and its queries above
        bottom, top = (st.key, st.query) if st.self_attention else ("tokens", "latents")
        q_y, k_y = (1.0, 0.0) if st.self_attention or st.query == "latents" else (0.0, 1.0)
        qpt = np.stack([x0 + xs[st.query][q], np.full(len(q), q_y)], -1)
        kpt = np.stack([x0 + xs[st.key][kk], np.full(len(kk), k_y)], -1)
        seg = np.stack([kpt, qpt] if st.receiver == st.query else [qpt, kpt], 1)  # (E, 2, 2): source → receiver
        panels.append(Panel(st, x0, bottom, top, x0 + xs[bottom], x0 + xs[top], q, kk, seg))
    return Layout(
        tuple(panels),
        _labels(token_labels, N, "x", "token_labels"),
        _labels(latent_labels, M, d.latent_name, "latent_labels"),
        d.title,
        d.latent_row,
    )


# --- drawing ------------------------------------------------------------------------------------------------------
@dataclass
class DiagramArtists:
    """What :func:`draw_stages` drew, per panel, so views can update it in place."""

    ax: Axes
    layout: Layout
    lines: list[LineCollection] = field(default_factory=list)  # every edge of the panel
    focus: list[LineCollection] = field(default_factory=list)  # highlighted edges, drawn on top (flow view)
    nodes: list[dict[str, PathCollection]] = field(default_factory=list)  # {"bottom": …, "top": …}
    heads: list[Any] = field(default_factory=list)  # arrowheads at the receiving end (hidden by the flow view)
    names: list[Text] = field(default_factory=list)  # the panel titles
    title: Text | None = None


def node_size(n: int) -> float:
    return float(np.clip((900 / max(n, 1)) ** 1.2 / 4, 12, 150))


def _row(ax: Axes, panel: Panel, side: str, y: float, labels: tuple[str, ...], name: str | None) -> PathCollection:
    xs = panel.top_x if y > 0.5 else panel.bottom_x
    n = len(xs)
    nodes = ax.scatter(xs, np.full(n, y), s=node_size(n), marker=MARKERS[side], c=COLORS[side], zorder=3,
                       edgecolors="white", linewidths=0.8)  # fmt: skip
    step = -(-n // 12)  # at most 12 labels per row
    size = 8 if n <= 10 else 7  # two-digit indices from x₁₀ on: smaller, so neighbours do not touch
    for i in range(0, n, step):
        ax.text(xs[i], y + (0.1 if y > 0.5 else -0.1), labels[i], ha="center", va="bottom" if y > 0.5 else "top",
                fontsize=size)  # fmt: skip
    if name:
        ax.text(panel.x0 - 0.06, y, name, ha="right", va="center", fontsize=9, color=COLORS[side], weight="bold")
    return nodes


def _softmax_band(ax: Axes, panel: Panel) -> None:
    """A light band around the row the softmax runs over, labelled 'softmax' at its right end."""
    st = panel.stage
    if st.softmax == "none":
        return
    on_key = st.softmax == "key"
    side = st.key if on_key else st.query
    y = (0.0 if on_key else 1.0) if st.self_attention else (1.0 if side == "latents" else 0.0)
    xs = panel.top_x if y > 0.5 else panel.bottom_x
    lo, hi = xs.min() - 0.045, xs.max() + 0.045
    ax.fill_between([lo, hi], y - 0.075, y + 0.075, color=COLORS[side], alpha=0.14, lw=0, zorder=0)
    ax.text(hi + 0.02, y, "softmax", ha="left", va="center", fontsize=8, style="italic", color="0.25")


def figsize(panels: int, height: float = 3.3) -> tuple[float, float]:
    """Figure size (inches) for a diagram of ``panels`` stages: about 3.4 in per panel, one panel a bit wider."""
    unit = 2.05 if panels > 1 else 3.0
    return unit * panels * (1 + PANEL_GAP) + 0.4, height


def draw_stages(
    stages: str | Diagram | Sequence[Stage | str],
    n_tokens: int,
    n_latents: int = 4,
    *,
    token_labels: Sequence[str] | None = None,
    latent_labels: Sequence[str] | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> DiagramArtists:
    """Draw the schematic of a diagram (a preset name, a :class:`Diagram` or a stage list) with N tokens and M
    latents: one panel per stage, the softmax row shaded, the flow direction as a grey arrow. Returns the artists.

    Example: ``draw_stages("latent", 8, 3)`` — write, gather and broadcast side by side.
    """
    lay = layout(stages, n_tokens, n_latents, token_labels=token_labels, latent_labels=latent_labels)
    ax = new_axes(ax, figsize=figsize(len(lay.panels)))
    art = DiagramArtists(ax, lay)
    for k, p in enumerate(lay.panels):
        st = p.stage
        _softmax_band(ax, p)
        dense = len(p.segments) / 100  # many edges: thinner and fainter, so the pattern stays visible
        art.lines.append(ax.add_collection(LineCollection(p.segments, colors=COLORS["edge"], zorder=1,
                                           linewidths=0.9 / max(1, dense**0.5), alpha=0.55 / max(1, dense**0.5))))  # fmt: skip
        art.focus.append(ax.add_collection(LineCollection(np.zeros((0, 2, 2)), zorder=2)))
        into = p.top_x if st.receiver == p.top else p.bottom_x  # one arrowhead under each receiving node
        up = st.receiver == p.top
        art.heads.append(ax.scatter(into, np.full(len(into), 0.885 if up else 0.115), s=34 if len(into) <= 16 else 0,
                                    marker="^" if up else "v", c=COLORS["edge"], linewidths=0, zorder=2))  # fmt: skip
        labels = {"tokens": lay.token_labels, "latents": lay.latent_labels}
        rows = {"tokens": "tokens", "latents": lay.latent_row}
        named = k == 0 or (p.bottom, p.top) != (lay.panels[k - 1].bottom, lay.panels[k - 1].top)
        names = ("keys", "queries") if st.self_attention else (rows[p.bottom], rows[p.top])
        art.nodes.append({
            "bottom": _row(ax, p, p.bottom, 0.0, labels[p.bottom], names[0] if named else None),
            "top": _row(ax, p, p.top, 1.0, labels[p.top], names[1] if named else None),
        })  # fmt: skip
        ax_x = p.x0 - 0.1
        ax.annotate("", xy=(ax_x, 0.85 if up else 0.15), xytext=(ax_x, 0.15 if up else 0.85),
                    arrowprops={"arrowstyle": "-|>", "color": "0.55", "lw": 2, "mutation_scale": 14})  # fmt: skip
        number = f"{k + 1}. " if len(lay.panels) > 1 else ""
        art.names.append(ax.text(p.x0 + 0.5, 1.62, f"{number}{st.name}", ha="center", fontsize=10, weight="bold"))
        ax.text(p.x0 + 0.5, 1.42, st.caption.replace("latents", lay.latent_row), ha="center", fontsize=8.5)
        if st.note:
            ax.text(p.x0 + 0.5, -0.36, st.note, ha="center", va="top", fontsize=8.5, style="italic", color="0.3")
    ax.set_xlim(-0.32, lay.width - PANEL_GAP + 0.22)
    ax.set_ylim(-0.55, 1.85)
    ax.set_axis_off()
    art.title = ax.set_title(lay.title if title is None else title, fontsize=11)
    return art
