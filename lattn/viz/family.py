"""Figures of notebook 04: the stages each family member uses, its token→token map with the future veiled, and the
leak profile.

Plain data in (arrays, one dict per mechanism as :class:`~lattn.widgets.family.FamilyExplorer` computes it), figures
out. Knows nothing about models or widgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import MAP_CMAP, heatmap

__all__ = ["FUTURE_RGBA", "OKABE_ITO", "STAGE_AXES", "distinguish", "future_shade", "stage_overview", "token_maps"]

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


def future_shade(rows: int, cols: int, offset: int = 0) -> np.ndarray:
    """RGBA (rows, cols, 4): veiled where column j lies in row i's future (j > i + offset), transparent elsewhere.

    ``offset`` places row i at position i + offset (Perceiver AR's latents sit at the last positions).
    """
    i, j = np.indices((rows, cols))
    shade = np.zeros((rows, cols, 4))
    shade[j > i + offset] = FUTURE_RGBA
    return shade


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
        scaled = eff / np.maximum(eff.max(axis=1, keepdims=True), 1e-12)
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
