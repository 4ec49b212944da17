"""The Colab-like in-kernel check: every explorer of a notebook moved in its kernel, and the kernel's package versions.

Two drivers run the same kernel code (``CHECK_CODE``) after a notebook has run top to bottom:

- tests/browser with ``LATTN_KERNEL_CHECK=colab`` (what tests/colab/run.sh runs): in the kernel of the notebook the
  classic Notebook 6.5 page has just run, so each notebook is executed once for both checks;
- this script, by hand or when run.sh skips the browser (``COLAB_BROWSER=0``, or no Chromium outside CI)::

      python tests/colab/check_explorers.py [notebooks/00_x.ipynb ...]   # default: notebooks/*.ipynb

  executes each notebook with nbclient in a kernel of this Python (cells marked ``# NBVAL_SKIP`` are left out, as
  nbval does; ``# NBVAL_RAISES_EXCEPTION`` cells may raise), no error output allowed, then runs the check.

In the kernel, ``explorer_check.check_explorers(globals())`` moves every control of every explorer and reports; the
kernel also reports the versions of the pinned packages, which must equal requirements.txt (proof that the kernel ran
in this environment). The script ends with a plain ``N passed, N failed`` line and exits 1 on any failure.
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

from explorer_check import problems as explorer_problems  # this folder is on sys.path (script, or the conftest)
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

# runs in the notebook's kernel, in its namespace; prints one line (MARKER + JSON) and leaves no name behind
CHECK_CODE = f"""
def _lattn_colab_report(namespace):
    import sys, json, importlib.metadata as md
    sys.path.insert(0, {str(HERE)!r})
    try:
        import explorer_check
    finally:
        sys.path.remove({str(HERE)!r})
    return {MARKER!r} + json.dumps({{
        "versions": {{name: md.version(name) for name in {sorted(PINS)!r}}},
        "also": {{"python": sys.version.split()[0], **{{n: md.version(n) for n in ("torch", "numpy")}}}},
        "explorers": explorer_check.check_explorers(namespace),
    }})
print(_lattn_colab_report(globals()))
del _lattn_colab_report
"""


def parse_report(text: str) -> dict:
    """The report CHECK_CODE printed (``text``: all the kernel printed)."""
    if MARKER not in text:
        raise ValueError(f"the in-kernel check printed no report: {text[-2000:]!r}")
    return json.loads(text.split(MARKER, 1)[1].splitlines()[0])


def report_problems(report: dict) -> tuple[list[str], list[str]]:
    """(failures, warnings) of a kernel's report: wrong package versions, and what the explorer check found."""
    failures, warnings = explorer_problems(report["explorers"])
    wrong = {k: v for k, v in report["versions"].items() if v not in SpecifierSet(PINS[k])}
    if wrong:
        failures.insert(0, f"the kernel did not run in the Colab-like env: {wrong} (wanted {PINS})")
    return failures, warnings


def describe(name: str, report: dict, failures: list[str], warnings: list[str], timing: str = "") -> list[str]:
    """The lines printed per notebook: ok/FAIL with counts, each failure, each warning, each explorer's controls."""
    explorers = report.get("explorers", [])
    controls = sum("skipped" not in c for e in explorers for c in e["controls"])
    summary = f"{len(explorers)} explorers, {controls} controls moved" + (f", {timing}" if timing else "")
    lines = [f"{'FAIL' if failures else 'ok  '} {name}: {summary}"]
    lines += [f"     {p}" for p in failures]
    lines += [f"     warning: {w}" for w in warnings]
    for ex in explorers:
        moved = ", ".join(
            f"{c['control']} ({c['changed_pixels']} px)" if "skipped" not in c else f"{c['control']} (skipped)"
            for c in ex["controls"]
        )
        lines.append(f"       {ex['name']} ({ex['type']}): {moved}")
    return lines


def kernel_line(reports: list[dict]) -> str:
    versions = {}
    for report in reports:
        versions.update(report.get("versions", {}), **report.get("also", {}))
    return "kernel: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) if versions else ""


# --- the nbclient driver (COLAB_BROWSER=0, or by hand) -----------------------------------------------------------


def prepared(path: Path):
    """The notebook as nbval would run it, plus the check cell at the end."""
    import nbformat

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
    nb.cells = [*cells, nbformat.v4.new_code_cell(CHECK_CODE)]
    return nb


def check_notebook(path: Path, timeout: int) -> tuple[list[str], list[str], dict, float]:
    """(failures, warnings, report, seconds) of one notebook executed with nbclient."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = prepared(path)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # the traceback's terminal colours
        return [f"a cell failed:\n{plain}"], [], {}, time.perf_counter() - start
    seconds = time.perf_counter() - start
    problems = []
    for i, cell in enumerate(nb.cells[:-1]):
        if "raises-exception" in cell.metadata.get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                problems.append(f"cell {i}: {out['ename']}: {out['evalue']}")
    printed = "".join(
        out.get("text", "") for out in nb.cells[-1].get("outputs", []) if out.get("output_type") == "stream"
    )
    report = parse_report(printed)
    failures, warnings = report_problems(report)
    problems += failures
    views = sum(
        "application/vnd.jupyter.widget-view+json" in out.get("data", {})
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )
    if report["explorers"] and not views:
        problems.append(f"{len(report['explorers'])} explorers in the namespace, but no widget was displayed")
    return problems, warnings, report, seconds


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
    reports = []
    for path in notebooks:
        failures, warnings, report, seconds = check_notebook(path, args.timeout)
        reports.append(report)
        print("\n".join(describe(path.name, report, failures, warnings, f"{seconds:.1f} s")))
        failed += bool(failures)
        passed += not failures
    if reports and kernel_line(reports):
        print(kernel_line(reports))
    print(f"colab-like: {passed} passed, {failed} failed")
    if not notebooks:
        print("no notebooks found")
    return 1 if failed or not notebooks else 0


if __name__ == "__main__":
    sys.exit(main())
