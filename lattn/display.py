"""What the package shows in a notebook kernel: widgets with a picture and a text fallback, and progress bars that
leave nothing behind in a stored notebook.

* :func:`widget_bundle` builds the display bundle of a widget: the live view plus, for an explorer, a PNG and a
  one-line text (what GitHub, nbviewer and a stored file show);
* :func:`progress_bar` shows a tqdm bar whose stored output has no text at all (the bar a training run shows by
  default; :func:`lattn.train.fit` takes any other).

The other side of the rule, what happens when a notebook is written, is :mod:`lattn.notebooks`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["FALLBACK", "WIDGET_FALLBACK", "WIDGET_VIEW", "progress_bar", "widget_bundle"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
FALLBACK = "interactive explorer: run the notebook to move the controls"
WIDGET_FALLBACK = "interactive widget: run the notebook to use it"


def widget_bundle(widget: Any, text: str = FALLBACK, png: bytes | None = None) -> dict[str, Any]:
    """The display bundle of a live widget with a fallback: {widget view, text/plain ``text``[, image/png]}.

    Works with ipywidgets 8 (``_repr_mimebundle_``) and 7.x (Colab's 7.7.1: a displayed widget also runs its
    ``_handle_displayed`` hook, which is how a box tells its children they are shown). ``text=""`` leaves the text
    out, so a strict nbval comparison does not see the output at all (widget views are never compared).
    """
    import base64

    if getattr(widget, "_view_name", None) is None:
        raise TypeError(f"widget must be a displayable ipywidget, got {type(widget).__name__}")
    data: dict[str, Any] = {WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}}
    if text:
        data["text/plain"] = text
    if png is not None:
        data["image/png"] = base64.b64encode(png).decode("ascii")
    if hasattr(widget, "_handle_displayed"):  # ipywidgets 7.x; 8.x has no such hook
        widget._handle_displayed()
    return data


def progress_bar(steps: Iterable[int], desc: str, total: int, disable: bool = False) -> tqdm:
    """Iterate over ``steps`` behind a ``tqdm.auto`` bar that disappears when done (``leave=False``; ``disable``:
    no bar at all, as in tqdm).

    In a notebook the bar is a widget displayed with no text/plain, so its stored output holds nothing to read or
    compare, and :func:`lattn.notebooks.clean_outputs` drops it; in a terminal it is tqdm's text bar on stderr. Returns the bar:
    iterate over it, call ``set_postfix`` as with any tqdm bar.
    """
    from tqdm.auto import tqdm as auto_tqdm
    from tqdm.notebook import tqdm as notebook_tqdm

    if disable or not issubclass(auto_tqdm, notebook_tqdm):
        return auto_tqdm(steps, desc=desc, total=total, leave=False, disable=disable)
    from IPython.display import display

    bar = auto_tqdm(steps, desc=desc, total=total, leave=False, display=False)
    display(widget_bundle(bar.container, text=""), raw=True)
    bar.displayed = True
    return bar
