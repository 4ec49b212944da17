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

Re-executing a notebook whose code did not change leaves the file as it was (a clean ``git status``), although times
and throughputs differ from run to run. The rule, applied to each code cell by :func:`keep_stable`:

* the new outputs **equal** the stored ones once the masks of nbval's sanitizer (``tests/nbval_sanitize.cfg``, found
  above the notebook; e.g. ``(300 steps, 3.2 s)``) are applied to their text, pictures byte for byte: the stored
  outputs are kept — nbval compares these cells under the same masks, so nothing it checks is hidden;
* a ``# NBVAL_IGNORE_OUTPUT`` cell that prints a time or a throughput (a **timing cell**) keeps its stored outputs,
  pictures included, when the new ones have the same outputs and the same text with every number masked (runs of
  spaces, which pad columns, read as one): a stale timing picture is preferred to a tree dirtied by every run (a
  measurement belongs to one machine anyway, and nbval ignores these cells); ``--refresh-timings`` stores the new
  measurements;
* a picture of the same size whose every pixel is within :data:`PICTURE_TOLERANCE` (16 of 255 levels) of the
  stored one's is the stored picture: a result that differs in its last bits (or a model trained through them, by
  a few tenths of a percent) moves anti-aliased edges by a fraction of a pixel, and nothing visible — a word, a
  line moved by a pixel, another colour — stays that close;
* any other difference (a new line, another word, a picture of a widget or of a result that changed) stores the
  new outputs.

Same code, another CPU: torch picks its vectorised kernels by what the CPU offers, and AVX-512 kernels round
differently from AVX2 ones — enough to flip the last printed digit of a loss after 240 training steps. The stored
outputs were made with torch's AVX2 kernels, so the executor and the test suite run kernels with
``ATEN_CPU_CAPABILITY=avx2`` on x86-64 (:func:`pin_cpu_kernels`; a value already set is kept).
"""

from __future__ import annotations

import argparse
import base64
import copy
import io
import os
import platform
import re
import time
from pathlib import Path
from typing import Any

from .display import WIDGET_FALLBACK, WIDGET_VIEW

__all__ = ["clean", "clean_outputs", "execute", "keep_stable", "pin_cpu_kernels", "sanitize_masks"]

# a tqdm bar's text repr, e.g. "latent M=4:   0%|          | 0/300 [00:00<?, ?it/s]"
TQDM_TEXT = re.compile(r"\d+%\|.*\| *\d+/\d+ \[")
IGNORE_MARK = "# NBVAL_IGNORE_OUTPUT"
# a measured time or throughput in printed text, e.g. "41.5 ms", "(300 steps, 3.2 s)", "67,821 tokens/s"
TIMING = re.compile(r"\d+(\.\d+)?\s*(ms|s|µs|it/s|tokens/s)\b")
NUMBER = re.compile(r"\d[\d,]*(\.\d+)?(e[+-]?\d+)?")
SPACES = re.compile(r"[ \t]+")
SANITIZE_FILE = Path("tests") / "nbval_sanitize.cfg"
PICTURE_TOLERANCE = 16  # of 255 levels per channel: rounding differences between CPUs, never a visible change


def pin_cpu_kernels() -> None:
    """On x86-64, make torch in this process (before its first operation) and in the kernels it starts use its AVX2
    kernels, the ones the stored outputs were made with (see the module docstring); a value already set is kept."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")


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


def sanitize_masks(notebook: Path) -> list[tuple[str, str]]:
    """The (regex, replacement) pairs of the nearest ``tests/nbval_sanitize.cfg`` above ``notebook`` (read as nbval
    reads it); none when there is no such file (a notebook outside the repository)."""
    for folder in Path(notebook).resolve().parents:
        cfg = folder / SANITIZE_FILE
        if cfg.is_file():
            return re.findall(r"^regex: (.*)$\n^replace: (.*)$", cfg.read_text(), flags=re.MULTILINE)
    return []


def _joined(value: Any) -> Any:
    return "".join(value) if isinstance(value, list) else value


def _form(outputs: list[dict[str, Any]], masks: list[tuple[str, str]], numbers: bool) -> list[Any]:
    """What a cell's outputs say once masked: text through ``masks`` (and with every number masked when ``numbers``),
    pictures as they are (dropped when ``numbers``: a timing cell's picture is as machine-bound as its numbers)."""

    def text(value: str) -> str:
        for regex, replacement in masks:
            value = re.sub(regex, replacement, value)
        return SPACES.sub(" ", NUMBER.sub("#", value)) if numbers else value  # a column widens with its numbers

    form = []
    for output in outputs:
        data = {
            key: text(_joined(value)) if key.startswith("text/") else None if numbers else _joined(value)
            for key, value in output.get("data", {}).items()
        }
        kind = (output.get("output_type"), output.get("name"), output.get("execution_count"), output.get("metadata"))
        form.append((kind, text(_joined(output.get("text", ""))), data))
    return form


def _is_timing_cell(cell: dict[str, Any], outputs: list[dict[str, Any]]) -> bool:
    prints = "".join(_joined(o.get("text", "")) + _joined(o.get("data", {}).get("text/plain", "")) for o in outputs)
    return _joined(cell.get("source", "")).startswith(IGNORE_MARK) and bool(TIMING.search(prints))


def _pixels(png: str) -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGBA"), dtype=np.int16)


def _same_pictures(old: list[dict[str, Any]], new: list[dict[str, Any]], masks: list[tuple[str, str]]) -> bool:
    """Equal once masked, except pictures that differ by at most :data:`PICTURE_TOLERANCE` in any pixel."""

    def pictures(outputs):
        return [_joined(o.get("data", {}).get("image/png", "")) for o in outputs]

    def blank(outputs):
        return [{**o, "data": {k: v for k, v in o.get("data", {}).items() if k != "image/png"}} for o in outputs]

    if _form(blank(old), masks, numbers=False) != _form(blank(new), masks, numbers=False):
        return False
    for a, b in zip(pictures(old), pictures(new)):
        if a != b:
            if not (a and b):
                return False
            try:
                pa, pb = _pixels(a), _pixels(b)
            except (OSError, ValueError):  # not a PNG
                return False
            if pa.shape != pb.shape or abs(pa - pb).max() > PICTURE_TOLERANCE:
                return False
    return True


def keep_stable(nb, stored: list[list[dict[str, Any]] | None], masks: list[tuple[str, str]]) -> int:
    """Put back the ``stored`` outputs (one list per cell, as read before execution) of every code cell whose new
    outputs differ from them only in what is machine-dependent (the rule in this module's docstring); returns how
    many cells were kept. ``nb`` is the executed, cleaned notebook."""
    kept = 0
    for cell, old in zip(nb.cells, stored):
        new = cell.get("outputs")
        if cell.get("cell_type") != "code" or not old or new is None or old == new:
            continue
        same = _form(old, masks, numbers=False) == _form(new, masks, numbers=False)
        if not same and _is_timing_cell(cell, old) and _is_timing_cell(cell, new):
            same = _form(old, masks, numbers=True) == _form(new, masks, numbers=True)
        if not same and len(old) == len(new):
            same = _same_pictures(old, new, masks)
        if same:
            cell.outputs = old
            kept += 1
    return kept


def execute(path: Path, timeout: int = 600, *, refresh_timings: bool = False) -> tuple[float, int]:
    """Execute one notebook in place; returns the wall time in seconds and how many cells kept their stored outputs
    (:func:`keep_stable`; none with ``refresh_timings``)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    stored = [copy.deepcopy(cell.get("outputs")) for cell in nb.cells]
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    seconds = time.perf_counter() - start
    clean(nb)
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)  # the new outputs as a stored file holds them
    kept = 0 if refresh_timings else keep_stable(nb, stored, sanitize_masks(path))
    nbformat.write(nb, path)
    return seconds, kept


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lattn.notebooks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--execute", action="store_true", help="execute in place (the default action)")
    parser.add_argument(
        "--refresh-timings",
        action="store_true",
        help="store new times and throughputs too (by default a cell whose outputs changed only in them is kept)",
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)")
    args = parser.parse_args(argv)
    pin_cpu_kernels()
    paths = args.notebooks or sorted(Path("notebooks").glob("*.ipynb"))
    if not paths:
        parser.error("no notebooks found (run from the repository root or name them)")
    for path in paths:
        seconds, kept = execute(path, refresh_timings=args.refresh_timings)
        note = f" ({kept} cells kept as stored: only timings or last-bit pixels differed)" if kept else ""
        print(f"{path}: {seconds:.1f} s{note}", flush=True)


if __name__ == "__main__":
    main()
