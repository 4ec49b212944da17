"""The flow view: the token ↔ latent diagram of :mod:`lattn.viz.diagram` with each link as wide and as opaque as its
attention weight in a real model — like bertviz's line view, but for tokens ↔ latents, all three stages.

Input: the :class:`~lattn.latent.LatentMaps` of one sequence (write (H, N, M), gather (H, M, N), broadcast (H, N, M)),
head-averaged or one head. A selected token shows where its information goes (its write and gather links) and where
its answer comes from (its broadcast links); a selected latent, which tokens fill it and which read it.
NOTE: a write link is drawn with the map's own weight (the token's share, softmax over latents), not the column
renormalised over tokens that the latent's weighted mean uses.
:class:`~lattn.widgets.flow.FlowExplorer` wires these functions to controls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from . import as_array, new_axes
from .diagram import COLORS, STAGES, DiagramArtists, Layout, Panel, draw_stages, figsize, node_size

__all__ = [
    "draw_flow",
    "flow_figure",
    "flow_styles",
    "flow_summary",
    "flow_title",
    "flow_weights",
    "line_width",
    "update_flow",
]


def flow_weights(maps: Any, *, head: int | None = None) -> dict[str, np.ndarray]:
    """The maps of one sequence as ``{stage: (n_query, n_key) array}``, head-averaged (``head=None``) or one head.

    ``maps``: a :class:`~lattn.latent.LatentMaps` (or a dict) with write (H, N, M), gather (H, M, N), broadcast
    (H, N, M) — a leading batch axis of size 1 is dropped; absent stages (``None``) are left out.
    """
    get = maps.get if isinstance(maps, dict) else lambda s: getattr(maps, s, None)
    out: dict[str, np.ndarray] = {}
    for s in STAGES:
        m = get(s)
        if m is None:
            continue
        a = as_array(m)
        if a.ndim == 4:
            if a.shape[0] != 1:
                raise ValueError(f"maps.{s} must hold one sequence (batch 1), got shape {tuple(a.shape)}")
            a = a[0]
        if a.ndim != 3:
            raise ValueError(f"maps.{s} must be (H, queries, keys) or (1, H, queries, keys), got {tuple(a.shape)}")
        if head is not None and not 0 <= head < a.shape[0]:
            raise ValueError(f"head must be in 0 … {a.shape[0] - 1} or None (mean), got {head}")
        out[s] = a.mean(0) if head is None else a[head]
    if not out:
        raise ValueError(f"maps has none of the stages {list(STAGES)}")
    n_m = {s: (w.shape if s != "gather" else w.shape[::-1]) for s, w in out.items()}  # each as (N, M)
    if len(set(n_m.values())) > 1:
        want = "write (H, N, M), gather (H, M, N), broadcast (H, N, M)"
        raise ValueError(f"maps disagree on N and M: expected {want}, got { ({s: w.shape for s, w in out.items()}) }")
    return out


def line_width(weight: Any, *, vmax: float = 1.0, gamma: float = 0.5, lw_max: float = 5.0) -> np.ndarray:
    """Line width in points for attention weights: 0.2 + (lw_max − 0.2)·(w / vmax)^gamma, increasing in w."""
    t = np.clip(as_array(weight) / vmax, 0.0, 1.0) ** gamma
    return 0.2 + (lw_max - 0.2) * t


def flow_styles(
    panel: Panel, weights: Any, *, token: int | None = None, latent: int | None = None, gamma: float = 0.5
) -> dict[str, np.ndarray]:
    """Per-edge style of a panel from its stage's (n_query, n_key) map: ``widths`` (E,), ``colors`` (E, 4) RGBA with
    opacity ∝ (w)^gamma, and ``focus`` (E,) bool — the edges touching the selected token or latent (vermillion;
    the others turn pale grey)."""
    w = as_array(weights)
    if w.shape != panel.shape:
        raise ValueError(f"stage {panel.stage.name!r}: weights must be (n_query, n_key) = {panel.shape}, got {w.shape}")
    e = w[panel.query, panel.key]  # (E,)
    t = np.clip(e, 0.0, 1.0) ** gamma
    focus = np.zeros(len(e), dtype=bool)
    for side, idx in (("tokens", token), ("latents", latent)):
        if idx is not None:
            focus |= panel.touches(side, idx)
    colors = np.tile(to_rgba(COLORS["edge"]), (len(e), 1))
    colors[:, 3] = 0.15 + 0.85 * t
    if focus.any():
        colors[~focus] = to_rgba(COLORS["muted"])
        colors[~focus, 3] = 0.1 + 0.4 * t[~focus]
        colors[focus, :3] = to_rgba(COLORS["focus"])[:3]
        colors[focus, 3] = 0.35 + 0.65 * t[focus]
    return {"widths": line_width(e, gamma=gamma), "colors": colors, "focus": focus}


def flow_summary(weights: dict[str, np.ndarray], lay: Layout, *, token: int | None = None,
                 latent: int | None = None) -> str:  # fmt: skip
    """One line naming the strongest link of the selected token (or latent) in each stage, with its weight."""
    if token is None and latent is None:
        return ""
    verbs = {"write": "{x} → {z}", "gather": "{z} reads {x}", "broadcast": "{x} reads {z}"}
    parts = []
    for s, w in weights.items():
        by_token = w.T if s == "gather" else w  # (N, M): token i ↔ latent j
        i = token if token is not None else int(by_token[:, latent].argmax())
        j = latent if token is None else int(by_token[token].argmax())
        verb = verbs[s].format(x=lay.token_labels[i], z=lay.latent_labels[j])
        parts.append(f"{s}: {verb} {by_token[i, j]:.2f}")
    return " · ".join(parts)


def _check_selection(lay: Layout, token: int | None, latent: int | None) -> None:
    for arg, idx, n in (("token", token, len(lay.token_labels)), ("latent", latent, len(lay.latent_labels))):
        if idx is not None and not 0 <= idx < n:
            raise ValueError(f"{arg} must be in 0 … {n - 1} or None, got {idx}")


def update_flow(
    art: DiagramArtists,
    weights: dict[str, np.ndarray],
    *,
    token: int | None = None,
    latent: int | None = None,
    shown: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """Restyle a flow view in place: line widths/opacity from ``weights``, the selected token/latent highlighted,
    stages outside ``shown`` hidden (their nodes stay)."""
    lay = art.layout
    _check_selection(lay, token, latent)
    for k, p in enumerate(lay.panels):
        name = p.stage.name
        if name not in weights:
            raise ValueError(f"no weights for stage {name!r}; got {list(weights)}")
        st = flow_styles(p, weights[name], token=token, latent=latent)
        visible = shown is None or name in shown
        art.lines[k].set_linewidths(st["widths"])
        art.lines[k].set_color(st["colors"])
        art.lines[k].set_alpha(None)
        art.focus[k].set_segments(p.segments[st["focus"]])
        art.focus[k].set_linewidths(st["widths"][st["focus"]])
        art.focus[k].set_color(st["colors"][st["focus"]])
        for c in (art.lines[k], art.focus[k]):
            c.set_visible(visible)
        art.heads[k].set_visible(False)  # line widths carry the story; the grey arrow keeps the direction
        number = f"{k + 1}. " if len(lay.panels) > 1 else ""
        art.names[k].set_text(f"{number}{name}" + ("" if visible else " (hidden)"))
        for row, side in (("bottom", p.bottom), ("top", p.top)):
            idx = token if side == "tokens" else latent
            nodes, n = art.nodes[k][row], len(p.top_x if row == "top" else p.bottom_x)
            hit = np.arange(n) == (-1 if idx is None else idx)
            nodes.set_sizes(np.where(hit, 2.2, 1.0) * node_size(n))
            nodes.set_edgecolors([COLORS["focus"] if h else "white" for h in hit])
            nodes.set_linewidths(np.where(hit, 2.5, 0.8))
    if title is not None and art.title is not None:
        art.title.set_text(title)


def flow_title(weights: dict[str, np.ndarray], lay: Layout, *, token: int | None = None,
               latent: int | None = None, head: int | None = None) -> str:  # fmt: skip
    """The view's title: what is selected and where its strongest links go."""
    _check_selection(lay, token, latent)
    which = "mean over heads" if head is None else f"head {head}"
    if token is not None:
        lead = f"{lay.token_labels[token]}: where its information goes and where its answer comes from ({which})"
    elif latent is not None:
        lead = f"{lay.latent_labels[latent]}: which tokens fill it and which read it ({which})"
    else:
        return f"attention weights of every stage ({which}): thick lines carry most weight\npick a token or a latent to follow its links"
    return lead + "\n" + flow_summary(weights, lay, token=token, latent=latent)


def _width_key(ax: Axes) -> None:
    handles = [Line2D([], [], color=COLORS["edge"], lw=float(line_width(w)), alpha=0.15 + 0.85 * w**0.5)
               for w in (0.05, 0.25, 1.0)]  # fmt: skip
    ax.legend(handles, ["0.05", "0.25", "1"], title="weight (line width ∝ √weight, same 0–1 scale in all stages)",
              loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, fontsize=8, title_fontsize=8, frameon=False)  # fmt: skip


def draw_flow(
    maps: Any,
    *,
    head: int | None = None,
    token: int | None = None,
    latent: int | None = None,
    shown: Sequence[str] | None = None,
    token_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> DiagramArtists:
    """Flow view of one sequence's maps (see :func:`flow_weights`): the schematic of the stages present, each link
    as wide and opaque as its weight; ``token``/``latent`` (0-based) highlights that node's links. Returns artists."""
    weights = flow_weights(maps, head=head)
    N, M = weights["gather"].shape[::-1] if "gather" in weights else next(iter(weights.values())).shape
    ax = new_axes(ax, figsize=figsize(len(weights), height=3.9))
    art = draw_stages(list(weights), N, M, token_labels=token_labels, ax=ax)
    _width_key(art.ax)
    update_flow(art, weights, token=token, latent=latent, shown=shown,
                title=flow_title(weights, art.layout, token=token, latent=latent, head=head))  # fmt: skip
    return art


def flow_figure(maps: Any, **kwargs: Any) -> Figure:
    """:func:`draw_flow` on a new figure; returns the figure (display it with :func:`lattn.viz.show`)."""
    return draw_flow(maps, **kwargs).ax.figure
