"""Re-execute the course notebooks in place, deterministically: ``python -m lattn.notebooks [--execute] [NB …]``.

Runs each notebook top to bottom in a fresh ``python3`` kernel (working directory: the notebook's folder), stores
the outputs, drops ``metadata.widgets`` (GitHub rejects malformed widget state) and prints the run-all time.
Without arguments it executes every ``notebooks/*.ipynb`` below the current directory.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["clean", "execute"]


def clean(nb) -> None:
    """Make a notebook reproducible: no widget state, kernel python3, no per-run cell metadata."""
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
