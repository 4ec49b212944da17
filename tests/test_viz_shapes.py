"""lattn.viz.shapes: a product is drawn only when its shapes agree, with one box per operand and a softmax arrow."""

import pytest
from matplotlib.patches import FancyArrowPatch, Rectangle

from lattn.viz.shapes import Box, draw_product, shapes_figure

SIZES = {"N": 6, "M": 3, "d": 2}


def test_product_boxes_and_softmax_arrow():
    fig = shapes_figure([[Box("Q", "N", "d"), Box("Kᵀ", "d", "M"), Box("S", "N", "M", softmax="cols")]], SIZES)
    ax = fig.axes[0]
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert [r.get_width() / r.get_height() for r in rects] == pytest.approx([2 / 6, 3 / 2, 3 / 6])  # d/N, M/d, M/N
    assert sum(isinstance(p, FancyArrowPatch) for p in ax.patches) == 1
    assert "N × M" in [t.get_text() for t in ax.texts]


@pytest.mark.parametrize(
    ("boxes", "match"),
    [
        ([Box("Q", "N", "d"), Box("K", "N", "d"), Box("S", "N", "d")], "d ≠ N"),  # a missing transpose
        ([Box("Q", "N", "d"), Box("Kᵀ", "d", "M"), Box("S", "M", "N")], r"S must be \(N×M\)"),
        ([Box("Q", "N", "d")], "at least one factor"),
    ],
)
def test_wrong_pictures_are_refused(boxes, match):
    with pytest.raises(ValueError, match=match):
        draw_product(boxes, SIZES)


def test_unknown_softmax_axis_is_refused():
    with pytest.raises(ValueError, match="softmax must be"):
        Box("S", "N", "M", softmax="keys")


def test_softmax_label_and_note_sit_under_the_box_and_long_titles_stay_in_the_figure():
    from lattn.viz import png_bytes

    lines = [
        [
            Box("Q", "N", "d"),
            Box("Kᵀ", "d", "M"),
            Box("A", "N", "M", softmax="cols", softmax_label="softmax over latents"),
        ],
        [Box("Ãᵀ", "M", "N", note="columns ÷ their sums"), Box("V", "N", "d"), Box("Δz", "M", "d")],
    ]
    fig = shapes_figure(lines, SIZES, titles=["write: tokens ask\n(a long title on two lines)", "latents receive"],
                        ops=[None, ["·", "→"]])  # fmt: skip
    png_bytes(fig)  # lays the figure out
    ax = fig.axes[0]
    texts = {t.get_text(): t for t in ax.texts}
    assert "softmax over latents → along each row" in texts and "columns ÷ their sums" in texts and "→" in texts
    box = fig.bbox
    for t in ax.texts:  # nothing drawn outside the figure
        ext = t.get_window_extent()
        assert ext.x0 >= box.x0 - 1 and ext.x1 <= box.x1 + 1 and ext.y0 >= box.y0 - 1, t.get_text()
    with pytest.raises(ValueError, match="ops needs one entry per line"):
        shapes_figure(lines, SIZES, ops=[None])
