"""Every notebook, run all in a real frontend in headless Chromium; every explorer in it moved by a user's input.

The frontend is JupyterLab 4 (ipywidgets 8 views) by default; ``LATTN_FRONTEND=classic``, run from the Colab-like
venv by tests/colab/run.sh, drives the classic Notebook 6.5 with ipywidgets 7.7.1's views instead.

nbval never looks at widget views or pictures; this does. Per notebook: as opened, before running, every stored
explorer shows its picture (no "Error displaying widget"); then run all, wait for an idle kernel, no cell
may show an error. Per explorer (found by its ``.lattn-status`` label): move its first slider a few times and change
one control of each other kind, waiting each time for the kernel-written status to count a new render and checking
that the picture's bytes changed; screenshots and the slider → image latency go to the artifacts folder.

With ``LATTN_KERNEL_CHECK=colab`` (tests/colab/run.sh), the same kernel, right after run-all, also runs the Colab-like
in-kernel check (tests/colab/check_explorers.py: every control of every explorer moved in the kernel, and the pinned
package versions), so the notebook is executed once for both checks; its failures fail the test after the page's.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from .labpage import COUNT_EXPLORERS_PY, FRONTEND_PAGES, Measurement
from .labserver import all_notebooks, frontend

pytestmark = pytest.mark.browser

NOTEBOOKS = all_notebooks()
MOVES = int(os.environ.get("LATTN_BROWSER_MOVES", "5"))  # slider moves per explorer (latency = their median)
RUN_ALL_TIMEOUT_S = 300


def stored_explorer_pictures(notebook) -> int:
    """Explorer outputs stored in the notebook file (a PNG with the explorer's one-line text)."""
    cells = json.loads(notebook.read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c["outputs"]]
    return sum(
        "image/png" in o.get("data", {}) and "".join(o["data"].get("text/plain", "")).startswith("interactive ")
        for o in outputs
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.name for nb in NOTEBOOKS])
def test_notebook_runs_and_explorers_redraw(notebook, page, lab, artifacts, record, kernel_check, record_kernel_check):
    for old in [artifacts / f"{notebook.stem}.png", *artifacts.glob(f"{notebook.stem}-explorer*.png")]:
        old.unlink(missing_ok=True)
    nb = FRONTEND_PAGES[frontend()](page, lab.url, notebook.name)
    # as stored, before running: every explorer shows its picture, never "Error displaying widget"
    expected_pictures = stored_explorer_pictures(notebook)
    shown = nb.stored_pictures()
    assert shown >= expected_pictures, (
        f"{notebook.name} as stored shows {shown} pictures (negative: that many widget errors),"
        f" its file holds {expected_pictures} explorer pictures"
    )
    page.screenshot(path=artifacts / f"{notebook.stem}-stored.png")
    start = time.perf_counter()
    nb.run_all(RUN_ALL_TIMEOUT_S)
    ran_s = time.perf_counter() - start
    problems = nb.cell_problems()
    page.screenshot(path=artifacts / f"{notebook.stem}.png")
    assert not problems, f"{notebook.name} in the {frontend()} frontend:\n" + "\n".join(problems)

    in_kernel = int(nb.kernel(COUNT_EXPLORERS_PY).strip())
    kernel_failures = []
    if kernel_check:  # before the page's moves, on the state run-all left, as a fresh kernel would have it
        start = time.perf_counter()
        printed = nb.kernel(kernel_check.CHECK_CODE)
        timing = f"run all {ran_s:.1f} s, in-kernel check {time.perf_counter() - start:.1f} s"
        try:
            report = kernel_check.parse_report(printed)
        except ValueError as err:
            pytest.fail(f"{notebook.name}: {err}")
        kernel_failures, warnings = kernel_check.report_problems(report)
        lines = kernel_check.describe(notebook.name, report, kernel_failures, warnings, timing)
        print("\n".join(lines))  # shown with a failure below; all notebooks' lines come at the end of the run
        record_kernel_check(lines, report)
        nb.settle()  # the check's own renders reach the page before the page's moves start
    # wait for the explorers the notebook displays (as many as its file stores pictures of), not for every one the
    # kernel holds: some are made only for a static figure and never displayed, and waiting for those ran to the timeout
    explorers = nb.explorers(expected=expected_pictures)
    assert len(explorers) >= max(expected_pictures, min(in_kernel, 1)), (
        f"the notebook displays {expected_pictures} explorers (the kernel holds {in_kernel}), the page shows"
        f" {len(explorers)}: {nb.widget_diagnostics()}"
    )
    if len(explorers) < in_kernel:  # e.g. an explorer made only for a static figure and never displayed
        print(f"{notebook.name}: the kernel holds {in_kernel} explorers, the page shows {len(explorers)}")

    for ex in explorers:
        ex.box.scroll_into_view_if_needed()
        count, _ = ex.read_status()
        assert count >= 1, f"explorer {ex.number} shows no render"
        stem = f"{notebook.stem}-explorer{ex.number}"
        ex.box.screenshot(path=artifacts / f"{stem}-before.png")
        sliders, toggles = ex.sliders(), ex.toggles()
        assert sliders or toggles, f"explorer {ex.number} has no control the test knows how to move"
        try:
            if sliders:
                name, handle = sliders[0]
                image_ms, status_ms = ex.move_slider(name, handle, MOVES)
                record(Measurement(notebook.name, ex.number, name, "slider", image_ms, status_ms))
            for kind, name, target in toggles:
                image_ms, status_ms = ex.flip(kind, name, target, times=2)
                record(Measurement(notebook.name, ex.number, name, kind, image_ms, status_ms))
        finally:
            ex.box.screenshot(path=artifacts / f"{stem}-after.png")

    problems = nb.cell_problems()  # a callback's traceback would land in an output
    assert not problems, f"{notebook.name} after moving its explorers:\n" + "\n".join(problems)
    assert not kernel_failures, f"{notebook.name}, in-kernel explorer check:\n" + "\n".join(kernel_failures)
