"""Matrix-shape pictures: the operands of a product as boxes with their sizes, the shape of the result, and the axis
a softmax runs over — the picture to put beside an equation wherever the axes change.

A box is a :class:`Box` (a name and the symbols of its rows and columns); its drawn height and width come from a
``sizes`` table of symbol → length (only the proportions matter), so ``Q (N×d) · Kᵀ (d×M) → S (N×M)`` draws the
shared inner size d as the same length on both boxes. :func:`draw_product` draws one line on an axes;
:func:`shapes_figure` stacks several lines (one per step of a lesson).

Example::

    >>> shapes_figure([[Box("Q", "N", "d"), Box("Kᵀ", "d", "M"), Box("S", "N", "M", softmax="cols")]],
    ...               sizes={"N": 6, "M": 3, "d": 2})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

from . import OKABE_ITO, new_axes

__all__ = ["Box", "draw_product", "shapes_figure"]

SOFTMAX_AXES = ("rows", "cols", None)
OP_GAP = 0.8  # inches between boxes: the operator and the next box's row label


@dataclass(frozen=True)
class Box:
    """One operand (or the result) of a product: ``name``, the symbols of its ``rows`` and ``cols``, a ``color``
    (default: by position), and ``softmax``: ``"cols"`` = a softmax along each row (over the columns), ``"rows"``
    = down each column (over the rows), None = no softmax. ``softmax_label`` says over what, in the lesson's words
    (e.g. "softmax over keys"); it is written under the box with the sizes. ``note`` is a line of small text under
    those."""

    name: str
    rows: str
    cols: str
    color: str | None = None
    softmax: str | None = None
    note: str = ""
    softmax_label: str = "softmax"

    def __post_init__(self) -> None:
        if self.softmax not in SOFTMAX_AXES:
            raise ValueError(f"softmax must be 'rows', 'cols' or None, got {self.softmax!r}")


def _length(symbol: str, sizes: Mapping[str, float]) -> float:
    """The drawn length of a dimension: its entry in ``sizes``, or 1 for a symbol not listed (e.g. "1")."""
    return float(sizes.get(symbol, 1.0))


def draw_product(
    boxes: Sequence[Box],
    sizes: Mapping[str, float],
    ax: Axes | None = None,
    *,
    y: float = 0.0,
    scale: float = 0.32,
    ops: Sequence[str] | None = None,
) -> list:
    """Draw ``boxes[0] · boxes[1] · … = boxes[-1]`` on one line centred at height ``y``; returns the artists.

    Inner sizes must agree (a box's cols = the next factor's rows), and the result's shape must be (first rows,
    last cols): a wrong picture is refused with a ValueError naming the mismatch. ``ops`` overrides the symbols
    between boxes (default "·" between factors and "=" before the result). ``scale`` = inches per unit of size.
    """
    if len(boxes) < 2:
        raise ValueError(f"a product needs at least one factor and a result, got {len(boxes)} box(es)")
    *factors, result = boxes
    for a, b in pairwise(factors):
        if a.cols != b.rows:
            raise ValueError(
                f"{a.name} ({a.rows}×{a.cols}) cannot multiply {b.name} ({b.rows}×{b.cols}): {a.cols} ≠ {b.rows}"
            )
    if (result.rows, result.cols) != (factors[0].rows, factors[-1].cols):
        raise ValueError(
            f"{result.name} must be ({factors[0].rows}×{factors[-1].cols}) = (rows of {factors[0].name}) × "
            f"(cols of {factors[-1].name}), got ({result.rows}×{result.cols})"
        )
    ops = list(ops) if ops is not None else ["·"] * (len(factors) - 1) + ["="]
    if len(ops) != len(boxes) - 1:
        raise ValueError(f"ops needs {len(boxes) - 1} symbols (one between each pair of boxes), got {len(ops)}")
    ax = new_axes(ax)
    artists: list = []
    x = 0.0
    for i, box in enumerate(boxes):
        w, h = _length(box.cols, sizes) * scale, _length(box.rows, sizes) * scale
        color = box.color or OKABE_ITO[i % len(OKABE_ITO)]
        rect = Rectangle((x, y - h / 2), w, h, facecolor=color, alpha=0.35, edgecolor=color, lw=1.6)
        artists.append(ax.add_patch(rect))
        artists.append(ax.text(x + w / 2, y, box.name, ha="center", va="center", fontsize=11, weight="bold"))
        artists.append(ax.text(x - 0.05, y, box.rows, ha="right", va="center", fontsize=9, color="0.25"))
        artists.append(
            ax.text(x + w / 2, y + h / 2 + 0.05, box.cols, ha="center", va="bottom", fontsize=9, color="0.25")
        )
        artists.append(ax.text(x + w / 2, y - h / 2 - 0.06, f"{box.rows} × {box.cols}", ha="center", va="top",
                               fontsize=8, color="0.3"))  # fmt: skip
        extra = []
        if box.softmax is not None:
            artists += _softmax_arrow(ax, x, y, w, h, box.softmax)
            extra.append(f"{box.softmax_label} {'→ along each row' if box.softmax == 'cols' else '↓ down each column'}")
        if box.note:
            extra.append(box.note)
        if extra:
            artists.append(ax.text(x + w / 2, y - h / 2 - 0.24, "\n".join(extra), ha="center", va="top", fontsize=8,
                                   style="italic", color="0.15"))  # fmt: skip
        x += w
        if i < len(ops):
            artists.append(ax.text(x + OP_GAP * 0.4, y, ops[i], ha="center", va="center", fontsize=14))
            x += OP_GAP
    ax.set_aspect("equal")
    ax.set_axis_off()
    return artists


def _softmax_arrow(ax: Axes, x: float, y: float, w: float, h: float, axis: str) -> list:
    """A dark arrow across the box along the axis the softmax normalises over (its label goes under the box)."""
    if axis == "cols":  # along each row: left → right, near the top of the box
        start, end = (x + 0.04, y + h / 2 - 0.09), (x + w - 0.04, y + h / 2 - 0.09)
    else:  # down each column: top → bottom, near the left side of the box
        start, end = (x + 0.09, y + h / 2 - 0.04), (x + 0.09, y - h / 2 + 0.04)
    arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10, color="0.15", lw=1.4)
    return [ax.add_patch(arrow)]


def shapes_figure(
    lines: Sequence[Sequence[Box]],
    sizes: Mapping[str, float],
    *,
    titles: Sequence[str] | None = None,
    title: str = "",
    scale: float = 0.32,
    ops: Sequence[Sequence[str] | None] | None = None,
) -> Figure:
    """One figure, one product per line (top to bottom), each with an optional title on its left (``\\n`` breaks
    it); the sizes table is shared, so the same symbol has the same length on every line. ``ops[i]`` overrides the
    symbols between the boxes of line i (see :func:`draw_product`)."""
    if titles is not None and len(titles) != len(lines):
        raise ValueError(f"titles needs one entry per line ({len(lines)}), got {len(titles)}")
    if ops is not None and len(ops) != len(lines):
        raise ValueError(f"ops needs one entry per line ({len(lines)}, None = the default), got {len(ops)}")
    heights = [max(_length(b.rows, sizes) for b in line) * scale for line in lines]
    widths = [sum(_length(b.cols, sizes) * scale for b in line) + OP_GAP * (len(line) - 1) for line in lines]
    below = [max(0.3 + 0.16 * _under(b) for b in line) for line in lines]  # the text lines under the boxes
    gap = 0.45  # room for the size labels above each line
    total = sum(heights) + sum(below) + gap * len(lines)
    chars = max((len(part) for t in titles or () for part in t.split("\n")), default=0)
    left = 0.6 + (0.085 * chars if titles is not None else 0.0)  # inches for the row labels (and bold titles)
    fig = Figure(figsize=(max(widths) + left + 1.0, total + (0.3 if title else 0.0)), layout="constrained")
    ax = fig.add_subplot()
    top = 0.0
    for i, (line, h) in enumerate(zip(lines, heights)):
        y = top - gap - h / 2
        draw_product(line, sizes, ax, y=y, scale=scale, ops=None if ops is None else ops[i])
        if titles is not None:
            ax.text(-0.55, y, titles[i], ha="right", va="center", fontsize=9.5, weight="bold")
        top -= gap + h + below[i]
    ax.set_xlim(-left, max(widths) + 0.8)
    ax.set_ylim(top, 0.05)
    if title:
        ax.set_title(title, fontsize=11)
    return fig


def _under(box: Box) -> int:
    """Lines of small text under a box besides its sizes: the softmax label and the note's lines."""
    return (box.softmax is not None) + (len(box.note.split("\n")) if box.note else 0)
