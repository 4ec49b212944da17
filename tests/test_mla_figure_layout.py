"""Layout checks for notebook 05's dataflow figure: every label and box is readable — no two texts overlap, no arrow
runs through a text other than the two nodes it joins, and no text straddles the dashed cache box."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Annotation

from lattn.mla import PRESETS
from lattn.viz.mla import dataflow_figure

PAD = 2.0  # points of clearance required around every text box


def layout(fig):
    """Per axes: (texts, their boxes in display coordinates incl. the node frames, arrows, cache-box extents)."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        texts = [t for t in ax.texts if t.get_text() and not isinstance(t, Annotation)]
        boxes = [(t.get_bbox_patch() or t).get_window_extent(r).padded(PAD) for t in texts]
        arrows = [t for t in ax.texts if isinstance(t, Annotation)]
        frames = [p.get_window_extent(r) for p in ax.patches if isinstance(p, FancyBboxPatch)]
        yield texts, boxes, arrows, frames


def name(t) -> str:
    return t.get_text().replace("\n", " ")


@pytest.mark.parametrize("preset", list(PRESETS))
def test_dataflow_labels_do_not_overlap_boxes_or_lines(preset):
    problems = []
    for texts, boxes, arrows, frames in layout(dataflow_figure(PRESETS[preset])):
        assert len(texts) >= 12 and len(arrows) >= 9 and len(frames) == 1  # the checks below have something to see
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                if boxes[i].overlaps(boxes[j]):
                    problems.append(f"'{name(texts[i])}' overlaps '{name(texts[j])}'")
        for a in arrows:
            ends = {id(a.xycoords), id(a.anncoords)}  # the nodes an arrow joins (nodes are Text artists)
            pts = np.concatenate(
                [
                    np.linspace(poly[k], poly[k + 1], 50)
                    for poly in a.arrow_patch.get_path().to_polygons(closed_only=False)
                    for k in range(len(poly) - 1)
                ]
            )  # points along the drawn arrow, display coordinates
            for t, bb in zip(texts, boxes):
                inside = (pts[:, 0] > bb.x0) & (pts[:, 0] < bb.x1) & (pts[:, 1] > bb.y0) & (pts[:, 1] < bb.y1)
                if id(t) not in ends and inside.any():
                    problems.append(f"an arrow crosses '{name(t)}'")
        for frame in frames:
            for t, bb in zip(texts, boxes):
                inside = frame.x0 < bb.x0 and bb.x1 < frame.x1 and frame.y0 < bb.y0 and bb.y1 < frame.y1
                if not (inside or not bb.overlaps(frame)):
                    problems.append(f"'{name(t)}' straddles the cache box")
    assert not problems, problems


def test_the_overlap_check_can_fail():
    fig = dataflow_figure(PRESETS["DeepSeek-V3"])
    ax = fig.axes[0]
    node = next(t for t in ax.texts if t.get_text().startswith("c_KV"))
    ax.text(*node.get_position(), "a label on top of c_KV", fontsize=7)
    texts, boxes, _, _ = next(layout(fig))
    i, j = texts.index(node), len(texts) - 1
    assert boxes[i].overlaps(boxes[j])
