"""Committed notebooks are executed, clean, deterministic-looking and lint-free (nbval compares their outputs)."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lattn.notebooks import IGNORE_MARK, TIMING  # what the executor calls a timing cell

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def nb(request) -> dict:
    return json.loads(request.param.read_text())


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_executed_in_order_without_errors(nb):
    counts = [c["execution_count"] for c in code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), f"not executed top to bottom in one run: {counts}"
    for c in code_cells(nb):
        assert not any(o["output_type"] == "error" for o in c["outputs"]), "".join(c["source"])[:200]
        for o in c["outputs"]:
            text = "".join(o.get("text", ""))
            assert "Traceback" not in text and "Error" not in text.split(":")[0], text[:200]


def test_metadata_clean(nb):
    assert "widgets" not in nb["metadata"], "strip metadata.widgets (python -m lattn.notebooks does)"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_has_a_static_figure(nb):
    images = sum("image/png" in o.get("data", {}) for c in code_cells(nb) for o in c["outputs"])
    assert images >= 1, "a notebook needs at least one static figure for readers without a kernel"


def test_structure(nb):
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "colab.research.google.com" in "".join(nb["cells"][0]["source"])
    for heading in ("You will be able to", "## Summary", "Exercise 1", "Exercise 2"):
        assert heading in text, f"missing {heading!r}"


def test_ignored_outputs_are_widgets_timings_or_versions(nb):
    for c in code_cells(nb):
        src = "".join(c["source"])
        if src.startswith(IGNORE_MARK):
            kinds = {k for o in c["outputs"] for k in o.get("data", {})}
            streams = "".join("".join(o.get("text", "")) for o in c["outputs"] if o["output_type"] == "stream")
            plain = "".join("".join(o.get("data", {}).get("text/plain", "")) for o in c["outputs"])
            widget = "application/vnd.jupyter.widget-view+json" in kinds or plain.startswith("interactive ")
            timing = TIMING.search(streams) or "%" in streams
            assert widget or timing or "version" in src.lower() or not c["outputs"], src[:200]


def test_stored_outputs_read_well_without_a_kernel(nb):
    """GitHub/nbviewer show what is stored: a picture for every explorer, never a widget repr or a frozen bar."""
    for c in code_cells(nb):
        for o in c["outputs"]:
            data = o.get("data", {})
            text = "".join(o.get("text", "")) + "".join(data.get("text/plain", ""))
            assert "application/vnd.jupyter.widget-view+json" not in data, (
                "stored widget view (JupyterLab shows 'Error displaying widget' before the notebook runs): "
                + "".join(c["source"])[:120]
            )
            assert "children=" not in text, f"widget repr stored: {text[:120]}"
            assert not re.search(r"\b0%\|", text), f"frozen progress bar stored: {text[:120]}"


def test_no_two_identical_pictures(nb):
    """A picture shown twice in one notebook is a figure that says nothing new (or one that failed to change)."""
    seen: dict[str, int] = {}
    repeats = []
    for index, c in enumerate(nb["cells"]):
        for o in c.get("outputs", []):
            png = "".join(o.get("data", {}).get("image/png", "")).replace("\n", "")
            if png:
                digest = hashlib.sha256(png.encode()).hexdigest()
                if digest in seen:
                    repeats.append(f"c{seen[digest]} = c{index}")
                seen.setdefault(digest, index)
    assert not repeats, f"byte-identical pictures (cells by 0-based index): {', '.join(repeats)}"


def test_no_object_reprs_or_addresses(nb):
    for c in code_cells(nb):
        for o in c["outputs"]:
            text = "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
            assert not re.search(r" at 0x[0-9a-f]{6,}", text), text[:200]


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(), reason="ruff not installed"
)
def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    root = Path(__file__).parent.parent
    for args in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([ruff, *args], cwd=root, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
