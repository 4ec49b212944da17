"""Each notebook opens in Colab from its own badge, and its setup cell installs lattn there and nowhere else.

The setup cell (the first code cell) is executed for real, with every way of starting a process replaced by a
recorder (``subprocess.*``, ``os.system`` and the IPython shell behind ``%pip``/``!pip``): outside Colab it must
record nothing; with a stand-in ``google.colab`` module in ``sys.modules`` it must install lattn from the
repository the badge points at.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
from IPython.core.inputtransformer2 import TransformerManager

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# https://colab.research.google.com/github/OWNER/REPO/blob/BRANCH/PATH
COLAB_LINK = re.compile(r"https://colab\.research\.google\.com/github/([^/\s]+)/([^/\s]+)/blob/([^/\s]+)/([^)\s\"'>]+)")


def cells(path: Path) -> list[dict]:
    return [{**c, "source": "".join(c["source"])} for c in json.loads(path.read_text())["cells"]]


def badge(path: Path) -> tuple[str, str, str, str]:
    """(owner, repo, branch, path) of the Colab badge in the notebook's first cell."""
    first = cells(path)[0]
    assert first["cell_type"] == "markdown", f"{path.name}: the first cell must be the markdown with the badge"
    links = COLAB_LINK.findall(first["source"])
    assert links, f"{path.name}: no Colab badge link in the first cell"
    assert "colab-badge.svg" in first["source"], f"{path.name}: the Colab link has no badge image"
    assert len(set(links)) == 1, f"{path.name}: several different Colab links in the first cell: {links}"
    return links[0]


def setup_source(path: Path) -> str:
    code = [c for c in cells(path) if c["cell_type"] == "code"]
    assert code, f"{path.name}: no code cell"
    assert "google.colab" in code[0]["source"], f"{path.name}: the first code cell is not the Colab setup cell"
    return code[0]["source"]


def run_setup(source: str, in_colab: bool) -> list[str]:
    """Execute a setup cell with processes replaced by a recorder; returns what it tried to run, one line each."""
    calls: list[str] = []

    def recorder(name: str):
        def record(*args, **kwargs):
            calls.append(f"{name} {args} {kwargs}")
            return subprocess.CompletedProcess(args, 0, stdout="", stderr="")

        return record

    shell = types.SimpleNamespace(
        **{f: recorder(f"ipython.{f}") for f in ("run_line_magic", "run_cell_magic", "system", "getoutput")}
    )
    colab = {"google": types.ModuleType("google"), "google.colab": types.ModuleType("google.colab")}
    modules = {k: v for k, v in sys.modules.items() if k != "google.colab" and not k.startswith("google.colab.")}
    if in_colab:
        modules.update(colab)
    code = TransformerManager().transform_cell(source)  # %pip / !cmd → get_ipython().… calls
    fakes = {f: recorder(f"subprocess.{f}") for f in ("run", "call", "check_call", "check_output", "Popen")}
    with (
        mock.patch.dict(sys.modules, modules, clear=True),
        mock.patch.multiple(subprocess, **fakes),
        mock.patch.object(os, "system", recorder("os.system")),
    ):
        exec(compile(code, "<setup cell>", "exec"), {"__name__": "__main__", "get_ipython": lambda: shell})
    return calls


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_badge_opens_this_notebook(path):
    owner, repo, branch, target = badge(path)
    assert target == f"notebooks/{path.name}", f"{path.name}: the badge opens {target!r}"


def test_badges_agree_on_the_repository():
    where = {badge(p)[:3] for p in NOTEBOOKS}
    assert len(where) <= 1, f"the badges point at different repositories/branches: {where}"


def test_readme_colab_links_point_at_notebooks():
    readme = REPO / "README.md"
    if not readme.exists():
        pytest.skip("no README.md yet")
    notebook_badges = {badge(p)[:3] for p in NOTEBOOKS}
    for *where, target in COLAB_LINK.findall(readme.read_text()):
        assert (REPO / target).is_file(), f"README's Colab link opens {target!r}, which is not in the repository"
        assert not notebook_badges or tuple(where) in notebook_badges, (
            f"README's link to {target} is on {where}, the notebooks' badges on {notebook_badges}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_setup_cell_is_a_no_op_outside_colab(path):
    assert run_setup(setup_source(path), in_colab=False) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_setup_cell_installs_lattn_in_colab(path):
    owner, repo, _, _ = badge(path)
    calls = run_setup(setup_source(path), in_colab=True)
    installs = [c for c in calls if "install" in c and "lattn" in c]
    assert installs, f"{path.name}: in Colab the setup cell ran {calls or 'nothing'}, no install of lattn"
    assert any(f"github.com/{owner}/{repo}" in c for c in installs), (
        f"{path.name}: installs {installs}, not from the badge's repository github.com/{owner}/{repo}"
    )


def test_recorder_sees_each_way_of_installing():
    """The harness itself: each way a setup cell could install is caught (else the no-op test proves nothing)."""
    guard = 'import sys\nif "google.colab" in sys.modules:\n'
    ways = [
        "    import subprocess; subprocess.run(['pip', 'install', 'lattn'])",
        "    import subprocess; subprocess.check_call(['pip', 'install', 'lattn'])",
        "    import os; os.system('pip install lattn')",
        "    %pip install lattn",
        "    !pip install lattn",
    ]
    for way in ways:
        assert run_setup(guard + way, in_colab=False) == [], way
        assert len(run_setup(guard + way, in_colab=True)) == 1, way
    assert run_setup("import subprocess; subprocess.run(['pip', 'install', 'lattn'])", in_colab=False), "unguarded"
