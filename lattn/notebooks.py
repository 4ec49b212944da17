"""What the course's notebooks show and store: ``python -m lattn.notebooks [--execute] [NB …]`` re-executes them.

Two sides of one rule — *a stored notebook reads well without a kernel*:

* in the kernel, :func:`widget_bundle` builds the display bundle of a widget (the live view plus, for an explorer,
  a PNG and a one-line text) and :func:`progress_bar` shows a tqdm bar whose stored output has no text at all;
* when a notebook is written, :func:`clean_outputs` keeps the picture and the text of each explorer output and drops
  its widget view (a stored view shows "Error displaying widget: model not found" in JupyterLab, a ``VBox(children=…``
  repr on GitHub), drops leftover progress bars, and :func:`clean` strips ``metadata.widgets``.

The executor runs each notebook top to bottom in a fresh ``python3`` kernel (working directory: the notebook's
folder), cleans it and prints the run-all time. Without arguments it executes every ``notebooks/*.ipynb`` below the
current directory.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = [
    "FALLBACK",
    "WIDGET_FALLBACK",
    "WIDGET_VIEW",
    "clean",
    "clean_outputs",
    "execute",
    "progress_bar",
    "widget_bundle",
]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
FALLBACK = "interactive explorer: run the notebook to move the controls"
WIDGET_FALLBACK = "interactive widget: run the notebook to use it"
# a tqdm bar's text repr, e.g. "latent M=4:   0%|          | 0/300 [00:00<?, ?it/s]"
TQDM_TEXT = re.compile(r"\d+%\|.*\| *\d+/\d+ \[")


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
    compare, and :func:`clean_outputs` drops it; in a terminal it is tqdm's text bar on stderr. Returns the bar:
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


def _is_stale_widget(output: dict[str, Any]) -> bool:
    """A widget output without a picture whose text is nothing or a tqdm bar: it says nothing without a kernel."""
    data = output.get("data", {})
    if WIDGET_VIEW not in data or "image/png" in data:
        return False
    text = data.get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else text
    return not text.strip() or bool(TQDM_TEXT.search(text))


def clean_outputs(nb) -> int:
    """Make every output readable without a kernel; returns how many widget outputs it changed or dropped.

    * a widget output with a picture (an explorer) keeps ``image/png`` and its text, loses the widget view;
    * a widget output with no picture and no text, or a tqdm bar's text, is dropped (a frozen ``0%|`` bar);
    * any other widget output becomes the one-line :data:`WIDGET_FALLBACK` (never a ``VBox(children=…`` repr);
    * adjacent outputs of the same stream are joined (as the kernel's own, once no bar stands between them).
    """
    changed = 0
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                changed += 1
                if _is_stale_widget(output):
                    continue
                data.pop(WIDGET_VIEW)
                if "image/png" not in data:
                    data["text/plain"] = WIDGET_FALLBACK
            if kept and _same_stream(kept[-1], output):
                kept[-1]["text"] += output["text"]  # the lines a dropped bar stood between are one output again
                continue
            kept.append(output)
        if "outputs" in cell:
            cell.outputs = kept
    return changed


def _same_stream(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("output_type") == b.get("output_type") == "stream" and a.get("name") == b.get("name")


def clean(nb) -> None:
    """Make a notebook reproducible and readable: outputs as :func:`clean_outputs`, no widget state, kernel
    python3, no per-run cell metadata."""
    clean_outputs(nb)
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def execute(path: Path, timeout: int = 600) -> float:
    """Execute one notebook in place; returns the wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    seconds = time.perf_counter() - start
    clean(nb)
    nbformat.write(nb, path)
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lattn.notebooks", description=__doc__)
    parser.add_argument("--execute", action="store_true", help="execute in place (the default action)")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(Path("notebooks").glob("*.ipynb"))
    if not paths:
        parser.error("no notebooks found (run from the repository root or name them)")
    for path in paths:
        print(f"{path}: {execute(path):.1f} s", flush=True)


if __name__ == "__main__":
    main()
