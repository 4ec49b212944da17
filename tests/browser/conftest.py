"""Fixtures of the real-browser tests: one Jupyter server and one headless Debian Chromium per test session.

The server is JupyterLab 4, or the classic Notebook 6.5 with ``LATTN_FRONTEND=classic`` (what tests/colab/run.sh
runs in the Colab-like venv, for ipywidgets 7.7.1's views). Without Chromium (or Playwright) the tests are skipped
with a one-line reason, unless ``CI`` is set, where a missing browser is a failure. Screenshots and the latency
table go to ``artifacts/browser/`` (classic: ``artifacts/browser-classic/``; ``LATTN_ARTIFACTS`` moves it), whose
path is printed at the end of the run. ``LATTN_NOTEBOOKS`` points the suite at another folder of notebooks.

``LATTN_KERNEL_CHECK=colab`` (set by tests/colab/run.sh) adds the Colab-like in-kernel check of
tests/colab/check_explorers.py to each notebook's test, run in the kernel the page has just run the notebook in; its
per-notebook lines are printed at the end of the run and saved as ``kernel-check.txt`` next to the screenshots.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

import psutil
import pytest

from .labpage import Measurement, latency_table
from .labserver import LabServer, all_notebooks, artifacts_dir, frontend, notebook_dir

KERNEL_CHECKS = ("", "colab")


def kernel_check_name() -> str:
    name = os.environ.get("LATTN_KERNEL_CHECK", "")
    if name not in KERNEL_CHECKS:
        raise ValueError(f"LATTN_KERNEL_CHECK must be one of {KERNEL_CHECKS}, got {name!r}")
    return name


CHROMIUM = Path(os.environ.get("LATTN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
]


def _missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e .[test])"
    if frontend() == "classic" and not version("notebook", "").startswith("6."):
        return f"LATTN_FRONTEND=classic needs the classic Notebook 6 (tests/colab/run.sh), found {version('notebook')}"
    return None


def version(package: str, missing: str = "none") -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return missing


@pytest.fixture(scope="session")
def browser_ready() -> None:
    reason = _missing_browser()
    if reason and os.environ.get("CI"):
        pytest.fail(f"browser tests need a browser in CI: {reason}", pytrace=False)
    if reason:
        pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    out = artifacts_dir()
    out.mkdir(parents=True, exist_ok=True)  # each test replaces its own notebook's screenshots
    return out


@pytest.fixture(scope="session")
def lab(browser_ready, tmp_path_factory) -> LabServer:
    notebooks = all_notebooks()
    workdir = tmp_path_factory.mktemp("lab")
    # copy the notebooks' neighbours too (data files a notebook may open by a relative path)
    for extra in notebook_dir().iterdir():
        if extra.is_dir() and not extra.name.startswith("."):
            shutil.copytree(extra, workdir / "root" / extra.name)
    server = LabServer(workdir, notebooks, frontend())
    try:
        server.start()
        yield server
    finally:
        killed = server.stop()
        if killed:
            print(f"\nbrowser tests: killed {len(killed)} leftover process(es) of the {frontend()} server: {killed}")


@pytest.fixture(scope="session")
def browser(browser_ready):
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    try:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        started = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
        pw.stop()
        _, alive = psutil.wait_procs(started, timeout=10)
        for p in alive:  # a browser process that outlived close(): end it ourselves
            p.kill()


@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(120_000)
    try:
        yield page
    finally:
        context.close()
        lab.shutdown_kernels()


@pytest.fixture(scope="session")
def kernel_check():
    """tests/colab/check_explorers.py with ``LATTN_KERNEL_CHECK=colab``, else None."""
    if not kernel_check_name():
        return None
    colab = str(Path(__file__).resolve().parents[1] / "colab")
    if colab not in sys.path:
        sys.path.insert(0, colab)
    import check_explorers

    return check_explorers


# --- the latency table and the in-kernel check's lines, printed at the end of the run and saved next to the
# screenshots --------------------------------------------------------------------------------------------------------
MEASUREMENTS: list[Measurement] = []
KERNEL_REPORTS: list[tuple[list[str], dict]] = []  # (lines, report) per notebook that reached the in-kernel check


@pytest.fixture
def record():
    return MEASUREMENTS.append


@pytest.fixture
def record_kernel_check():
    return lambda lines, report: KERNEL_REPORTS.append((lines, report))


def pytest_terminal_summary(terminalreporter):
    if KERNEL_REPORTS:
        from check_explorers import kernel_line  # on sys.path since the kernel_check fixture ran

        lines = [line for lines, _ in KERNEL_REPORTS for line in lines]
        lines += [kernel_line([report for _, report in KERNEL_REPORTS])]
        out = artifacts_dir()
        out.mkdir(parents=True, exist_ok=True)
        (out / "kernel-check.txt").write_text("\n".join(lines) + "\n")
        terminalreporter.section(f"in-kernel explorer check ({kernel_check_name()})")
        for line in lines:
            terminalreporter.write_line(line)
    if not MEASUREMENTS:
        return
    table = latency_table(MEASUREMENTS)
    out = artifacts_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.md").write_text(f"{frontend()} frontend, ipywidgets {version('ipywidgets')}\n\n{table}\n")
    stack = f"{frontend()} frontend, ipywidgets {version('ipywidgets')}"
    terminalreporter.section(f"browser ({stack}): control change → redrawn image (ms)")
    terminalreporter.write_line(table)
    terminalreporter.write_line(f"screenshots and latency table: {out}")
