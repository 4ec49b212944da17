"""An explorer's display bundle carries the live widget view, a PNG of its picture and a one-line text; the notebook
executor stores the picture and the text, never a widget view or a widget repr."""

import base64
import io

import ipywidgets as W
import matplotlib.image as mpimg
import nbformat
import pytest
from IPython.core.formatters import DisplayFormatter
from nbformat.v4 import new_code_cell, new_notebook, new_output

from lattn.display import FALLBACK, WIDGET_FALLBACK, WIDGET_VIEW, widget_bundle
from lattn.notebooks import clean, clean_outputs
from lattn.widgets.base import Explorer


class Line(Explorer):
    """The smallest explorer: one slider, one line whose slope it sets."""

    figsize = (3.0, 2.0)

    def controls(self):
        return {"slope": W.IntSlider(value=1, min=-3, max=3)}

    def compute(self):
        return {"ys": [self.slope.value * x for x in range(5)]}

    def setup(self, fig):
        ax = fig.add_subplot()
        (self.line,) = ax.plot(range(5), [0] * 5)
        ax.set_ylim(-12, 12)

    def draw(self, state):
        self.line.set_ydata(state["ys"])


@pytest.fixture
def explorer() -> Line:
    return Line()


def test_bundle_has_the_live_view_the_picture_and_one_text_line(explorer):
    data, meta = explorer._repr_mimebundle_()
    assert set(data) == {WIDGET_VIEW, "image/png", "text/plain"}
    view = data[WIDGET_VIEW]
    assert view["version_major"] == 2 and view["model_id"] == explorer.widget().model_id
    assert isinstance(explorer.widget(), W.VBox) and explorer.widget() is explorer.widget()  # built once
    png = base64.b64decode(data["image/png"])
    assert png == explorer.png
    height, width = mpimg.imread(io.BytesIO(png), format="png").shape[:2]
    assert (width, height) == explorer.pixels == (meta["image/png"]["width"], meta["image/png"]["height"])
    assert data["text/plain"] == FALLBACK == "interactive explorer: run the notebook to move the controls"


def test_bundle_follows_the_current_picture(explorer):
    before = base64.b64decode(explorer._repr_mimebundle_()[0]["image/png"])
    explorer.set(slope=-2)
    after = base64.b64decode(explorer._repr_mimebundle_()[0]["image/png"])
    assert after != before and after == explorer.png


def test_ipython_displays_the_bundle_not_a_widget_repr(explorer):
    """What display(explorer) / a last expression sends: our bundle (no _ipython_display_ takes precedence)."""
    data, _ = DisplayFormatter().format(explorer)
    assert {WIDGET_VIEW, "image/png", "text/plain"} <= set(data)
    assert data["text/plain"] == FALLBACK and "children=" not in str(data)


def test_ipywidgets_7_displayed_hook_runs(explorer):
    """ipywidgets 7.x (Colab) tells a displayed box through _handle_displayed; 8.x has no such hook."""
    calls = []
    box = explorer.widget()
    box._handle_displayed = lambda **kw: calls.append(kw)
    explorer._repr_mimebundle_()
    assert calls == [{}]


def test_widget_bundle_rejects_non_widgets():
    with pytest.raises(TypeError, match="widget must be a displayable ipywidget, got int"):
        widget_bundle(3)


def notebook_with(*outputs) -> nbformat.NotebookNode:
    nb = new_notebook(cells=[new_code_cell("explorer", outputs=list(outputs), execution_count=1)])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_executor_keeps_the_picture_and_drops_the_view(explorer):
    data, meta = explorer._repr_mimebundle_()
    stream = new_output("stream", name="stdout", text="hello\n")
    nb = notebook_with(
        new_output("display_data", data=dict(data), metadata=meta),
        new_output("execute_result", data=dict(data), metadata=meta, execution_count=1),
        stream,
        new_output("display_data", data={WIDGET_VIEW: data[WIDGET_VIEW], "text/plain": "IntSlider(value=3)"}),
    )
    clean(nb)
    outputs = nb.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data", "execute_result", "stream", "display_data"]
    for out in outputs[:2]:
        assert set(out.data) == {"image/png", "text/plain"} and base64.b64decode(out.data["image/png"]) == explorer.png
        assert out.data["text/plain"] == FALLBACK and out.metadata == meta
    assert outputs[2] == stream
    assert outputs[3].data == {"text/plain": WIDGET_FALLBACK}  # a bare widget: a note, not its repr
    assert "widgets" not in nb.metadata
    text = nbformat.writes(nb)
    assert WIDGET_VIEW not in text and "children=" not in text and "IntSlider(" not in text


def test_clean_outputs_counts_and_leaves_plain_outputs_alone():
    png = base64.b64encode(b"not really a png").decode()
    nb = notebook_with(new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}))
    before = nbformat.writes(nb)
    assert clean_outputs(nb) == 0 and nbformat.writes(nb) == before
