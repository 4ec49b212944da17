"""What the course's notebooks show and store: ``python -m lattn.notebooks [--execute] [NB …]`` re-executes them.

Two sides of one rule — *a stored notebook reads well without a kernel*:

* in the kernel, :mod:`lattn.display` builds the display bundle of a widget (the live view plus, for an explorer,
  a PNG and a one-line text) and shows progress bars whose stored output has no text at all;
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
from pathlib import Path
from typing import Any

from .display import WIDGET_FALLBACK, WIDGET_VIEW

__all__ = ["clean", "clean_outputs", "execute"]

# a tqdm bar's text repr, e.g. "latent M=4:   0%|          | 0/300 [00:00<?, ?it/s]"
TQDM_TEXT = re.compile(r"\d+%\|.*\| *\d+/\d+ \[")


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
