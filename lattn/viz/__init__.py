"""Drawing: arrays in, matplotlib artists out. Knows nothing about widgets or models.

Functions take plain arrays (numpy or torch; converted with :func:`as_array`) with a documented layout, draw on a
given ``ax`` (or a new figure when ``ax`` is None) and return their artists, so explorers can update them in place
with :func:`update_heatmap`. Figures are built with the object-oriented API (``matplotlib.figure.Figure``), never
pyplot, so nothing is shown unless a notebook displays it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.ticker import MaxNLocator

__all__ = [
    "CATEGORY_CMAP",
    "DPI",
    "MAP_CMAP",
    "OKABE_ITO",
    "SIGNED_CMAP",
    "as_array",
    "category_strip",
    "heatmap",
    "map_grid",
    "new_axes",
    "png_bytes",
    "show",
    "update_heatmap",
]

# Figure standards of the course (design.md): crisp text, colour-blind-safe maps.
DPI = 120  # every PNG the course renders (static figures and explorers)
MAP_CMAP = "viridis"  # weights and other non-negative quantities: dark = none, bright = strong (colour-blind safe)
SIGNED_CMAP = "RdBu_r"  # signed quantities, centred on 0 (blue < 0 < red; colour-blind safe)
# Okabe & Ito's palette of 8 colours that stay distinct under the common colour-vision deficiencies: for lines and
# for categories (token roles, clusters).
OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")
CATEGORY_CMAP = ListedColormap(OKABE_ITO, name="okabe_ito")


def as_array(a: Any) -> np.ndarray:
    """torch tensor / list / numpy → float numpy array (detached, on the CPU)."""
    if hasattr(a, "detach"):
        a = a.detach().float().cpu().numpy()
    return np.asarray(a, dtype=float)


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    """Render a figure to PNG bytes (no timestamp metadata, so equal pictures give equal bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def show(fig: Figure, dpi: int = DPI) -> None:
    """Display a figure in a notebook as a PNG (works without pyplot and with any matplotlib backend)."""
    from IPython.display import Image, display

    display(Image(data=png_bytes(fig, dpi), format="png"))


def new_axes(ax: Axes | None = None, figsize: tuple[float, float] = (4.0, 3.2)) -> Axes:
    """``ax`` itself, or the single axes of a new constrained-layout figure."""
    if ax is not None:
        return ax
    return Figure(figsize=figsize, layout="constrained").add_subplot()


def heatmap(
    data: Any,
    ax: Axes | None = None,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    vmin: float | None = 0.0,
    vmax: float | None = None,
    cmap: str = MAP_CMAP,
    colorbar: bool = True,
    cbar_label: str = "",
) -> AxesImage:
    """Draw a 2-D array (rows, cols) as an image; rows are queries, columns keys for attention maps.

    ``vmin``/``vmax`` fix the colour scale (``vmax=None``: the data's maximum); pass the same values to maps that
    are compared side by side. ``cbar_label`` names the colour scale (e.g. ``"weight"``, ``"|Δ|"``)."""
    ax = new_axes(ax)
    arr = as_array(data)
    im = ax.imshow(
        arr,
        cmap=cmap,
        vmin=vmin,
        vmax=vmax if vmax is not None else max(float(arr.max()), 1e-12),
        aspect="auto",
        interpolation="nearest",
    )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=cbar_label or None)
    return im


def update_heatmap(im: AxesImage, data: Any, vmax: float | None = None, vmin: float = 0.0) -> None:
    """Replace the data of a heatmap in place; the shape may change (the extent follows)."""
    arr = as_array(data)
    im.set_data(arr)
    rows, cols = arr.shape
    im.set_extent((-0.5, cols - 0.5, rows - 0.5, -0.5))
    im.set_clim(vmin, vmax if vmax is not None else max(float(arr.max()), 1e-12))
    im.axes.set_xlim(-0.5, cols - 0.5)
    im.axes.set_ylim(rows - 0.5, -0.5)


def map_grid(
    maps: Any,
    *,
    row_titles: Sequence[str] = (),
    col_titles: Sequence[str] = (),
    xlabel: str = "key",
    ylabel: str = "query",
    cell: float = 2.2,
    shared_scale: bool = True,
    titles: Sequence[Sequence[str]] = (),
    ticks: bool = False,
    cbar_label: str = "attention weight",
    suptitle: str = "",
    vmax: float | None = None,
) -> Figure:
    """Small multiples of attention maps laid out as (rows, cols, queries, keys) — a list of lists works too,
    and the maps may differ in shape. Returns the figure.

    ``shared_scale`` (default): every map on one colour scale 0..``vmax`` (default: the largest value of all maps)
    with one colorbar, so maps compared side by side are comparable; otherwise each map gets its own colorbar.
    ``titles[i][j]`` titles each map (else ``col_titles`` the first row); ``ticks`` keeps integer index ticks.
    """
    grid = [[as_array(m) for m in row] for row in maps]
    nrows, ncols = len(grid), max(len(r) for r in grid)
    if nrows * ncols > 12:
        raise ValueError(f"map_grid draws at most 12 maps legibly, got {nrows}×{ncols}; split the figure")
    fig = Figure(figsize=(cell * ncols + 0.9, cell * nrows + 0.4 + 0.3 * bool(suptitle)), layout="constrained")
    if shared_scale and vmax is None:
        vmax = max(float(m.max()) for r in grid for m in r)
    for i, row in enumerate(grid):
        for j, m in enumerate(row):
            ax = fig.add_subplot(nrows, ncols, i * ncols + j + 1)
            title = titles[i][j] if i < len(titles) and j < len(titles[i]) else ""
            title = title or (col_titles[j] if i == 0 and j < len(col_titles) else "")
            im = heatmap(m, ax, title=title, vmax=vmax if shared_scale else None, colorbar=not shared_scale,
                         cbar_label=cbar_label)  # fmt: skip
            if not ticks:
                ax.set_xticks([])
                ax.set_yticks([])
            ax.tick_params(labelsize=8)
            if i == nrows - 1:
                ax.set_xlabel(xlabel, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{row_titles[i]}\n{ylabel}" if i < len(row_titles) else ylabel, fontsize=9)
    if shared_scale:
        fig.colorbar(im, ax=fig.axes, fraction=0.03, pad=0.02, label=f"{cbar_label} (one scale for all maps)")
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig


def category_strip(groups: Any, ax: Axes, *, title: str = "role", vertical: bool = True) -> AxesImage:
    """A strip of category colours (Okabe–Ito, up to 8 categories), one cell per token: tokens along the rows
    (``vertical``) or the columns. Returns the image; update it with ``update_heatmap(im, g[:, None], vmax=7)``."""
    g = as_array(groups) % len(OKABE_ITO)
    im = ax.imshow(g[:, None] if vertical else g[None, :], cmap=CATEGORY_CMAP, vmin=0, vmax=len(OKABE_ITO) - 1,
                   aspect="auto", interpolation="nearest")  # fmt: skip
    (ax.set_xticks if vertical else ax.set_yticks)([])
    if title:
        ax.set_title(title, fontsize=9) if vertical else ax.set_ylabel(title, fontsize=8, rotation=0, ha="right")
    return im


# --- curves and text (notebook 06) --------------------------------------------------------------------------------
__all__ += ["line_chart", "text_panel", "wrap_text"]


def line_chart(
    series: Any,
    ax: Axes | None = None,
    *,
    baseline: float | None = None,
    baseline_label: str = "",
    xlabel: str = "",
    ylabel: str = "",
    title: str = "",
    logx: bool = False,
    logy: bool = False,
    marker: str = "",
) -> list:
    """One line per entry of ``series`` ({label: (xs, ys)}), plus an optional dashed horizontal ``baseline``.
    Returns the line artists (update them in place with ``set_data``)."""
    ax = new_axes(ax)
    lines = [
        ax.plot(
            as_array(xs), as_array(ys), marker=marker, label=label, color=OKABE_ITO[(4, 5, 2, 0, 6, 1, 7, 3)[i % 8]]
        )[0]
        for i, (label, (xs, ys)) in enumerate(series.items())
    ]  # Okabe–Ito, strongest contrasts first (blue, vermillion, green, orange, …)
    if baseline is not None:
        ax.axhline(baseline, color="0.5", ls="--", lw=1, label=baseline_label or None)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if series or baseline_label:
        ax.legend(fontsize=8)
    return lines


def wrap_text(text: str, width: int = 64) -> str:
    """Hard-wrap every line of ``text`` at ``width`` characters (line breaks of the text are kept)."""
    if width < 1:
        raise ValueError(f"width must be ≥ 1, got {width}")
    out = []
    for line in text.split("\n"):
        out.extend([line[i : i + width] for i in range(0, len(line), width)] or [""])
    return "\n".join(out)


def text_panel(text: str, ax: Axes | None = None, *, title: str = "", width: int = 64, fontsize: float = 9):
    """Plain text in a frameless axes: monospace, wrapped at ``width`` characters, no maths parsing (``$`` is
    just a dollar). Returns the Text artist; update it in place with ``set_text(wrap_text(new, width))``."""
    ax = new_axes(ax)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10, loc="left")
    return ax.text(
        0.0, 1.0, wrap_text(text, width), family="monospace", fontsize=fontsize, va="top", ha="left",
        transform=ax.transAxes, parse_math=False,
    )  # fmt: skip
