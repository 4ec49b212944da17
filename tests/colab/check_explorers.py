"""Run every notebook in the Colab-like environment and check every explorer in its kernel.

Usage (from tests/colab/run.sh, with .venv-colab's Python)::

    python tests/colab/check_explorers.py [notebooks/00_x.ipynb ...]   # default: notebooks/*.ipynb

Per notebook: execute it top to bottom with nbclient in a kernel of this Python (cells marked ``# NBVAL_SKIP`` are
left out, as nbval does; ``# NBVAL_RAISES_EXCEPTION`` cells may raise), no error output allowed; then, in the same
kernel, ``explorer_check.check_explorers(globals())`` moves every control of every explorer and reports. The
kernel also reports the versions of the pinned packages, which must equal requirements.txt (proof that the kernel
ran in this environment). Ends with a plain ``N passed, N failed`` line; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from explorer_check import problems as explorer_problems  # this folder is sys.path[0] when run as a script
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MARKER = "LATTN-COLAB-REPORT "


def pinned() -> dict[str, str]:
    """name → version specifier of each line of requirements.txt, e.g. {"ipywidgets": "==7.7.1", ...}."""
    lines = (line.split("#")[0].strip() for line in (HERE / "requirements.txt").read_text().splitlines())
    reqs = [Requirement(line) for line in lines if line]
    return {r.name: str(r.specifier) for r in reqs if r.specifier}


PINS = pinned()

CHECK_CELL = f"""
import sys as _sys
_sys.path.insert(0, {str(HERE)!r})
import json as _json, importlib.metadata as _md, explorer_check as _ec
_sys.path.pop(0)
print({MARKER!r} + _json.dumps({{
    "versions": {{_name: _md.version(_name) for _name in {sorted(PINS)!r}}},
    "also": {{"python": _sys.version.split()[0], **{{_n: _md.version(_n) for _n in ("torch", "numpy")}}}},
    "explorers": _ec.check_explorers(globals()),
}}))
"""


def prepared(path: Path) -> nbformat.NotebookNode:
    """The notebook as nbval would run it, plus the check cell at the end."""
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and ("NBVAL_SKIP" in first or "nbval-skip" in tags):
            continue
        if cell.cell_type == "code" and "NBVAL_RAISES_EXCEPTION" in first:
            cell.metadata["tags"] = [*tags, "raises-exception"]
        cells.append(cell)
    nb.cells = [*cells, nbformat.v4.new_code_cell(CHECK_CELL)]
    return nb


def kernel_report(nb: nbformat.NotebookNode) -> dict:
    for out in nb.cells[-1].get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout" and MARKER in out.get("text", ""):
            return json.loads(out["text"].split(MARKER, 1)[1])
    raise RuntimeError(f"the check cell printed no report: {nb.cells[-1].get('outputs')}")


def check_notebook(path: Path, timeout: int) -> tuple[list[str], dict, float]:
    """(failures, report, seconds); ``report["warnings"]`` holds what is worth a look but not a failure."""
    nb = prepared(path)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # the traceback's terminal colours
        return [f"a cell failed:\n{plain}"], {}, time.perf_counter() - start
    seconds = time.perf_counter() - start
    problems = []
    for i, cell in enumerate(nb.cells[:-1]):
        if "raises-exception" in cell.metadata.get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: {out['ename']}: {out['evalue']}")
    report = kernel_report(nb)
    wrong = {k: v for k, v in report["versions"].items() if v not in SpecifierSet(PINS[k])}
    if wrong:
        problems.append(f"the kernel did not run in the Colab-like env: {wrong} (wanted {PINS})")
    failures, report["warnings"] = explorer_problems(report["explorers"])
    problems += failures
    views = sum(
        "application/vnd.jupyter.widget-view+json" in out.get("data", {})
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )
    if report["explorers"] and not views:
        problems.append(f"{len(report['explorers'])} explorers in the namespace, but no widget was displayed")
    report["widget_views"] = views
    return problems, report, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted((REPO / "notebooks").glob("*.ipynb"))
    # a private Jupyter data dir: the python3 kernel is this Python, whatever the user's set-up says
    os.environ["JUPYTER_DATA_DIR"] = tempfile.mkdtemp(prefix="lattn-colab-jupyter-")
    os.environ.pop("JUPYTER_PATH", None)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # ipykernel's debugger warns on every start

    passed = failed = 0
    versions = {}
    for path in notebooks:
        problems, report, seconds = check_notebook(path, args.timeout)
        versions.update(report.get("versions", {}), **report.get("also", {}))
        controls = sum("skipped" not in c for e in report.get("explorers", []) for c in e["controls"])
        summary = f"{len(report.get('explorers', []))} explorers, {controls} controls moved, {seconds:.1f} s"
        if problems:
            failed += 1
            print(f"FAIL {path.name}: {summary}")
            for p in problems:
                print(f"     {p}")
        else:
            passed += 1
            print(f"ok   {path.name}: {summary}")
        for w in report.get("warnings", []):
            print(f"     warning: {w}")
        for ex in report.get("explorers", []):
            moved = ", ".join(
                f"{c['control']} ({c['changed_pixels']} px)" if "skipped" not in c else f"{c['control']} (skipped)"
                for c in ex["controls"]
            )
            print(f"       {ex['name']} ({ex['type']}): {moved}")
    if versions:
        print("kernel: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    print(f"colab-like: {passed} passed, {failed} failed")
    if not notebooks:
        print("no notebooks found")
    return 1 if failed or not notebooks else 0


if __name__ == "__main__":
    sys.exit(main())
