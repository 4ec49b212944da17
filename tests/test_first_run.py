"""A first run as users do it, in scratch copies of this checkout: a clone in a folder named ``lattn`` (git's default),
re-executing a notebook, and ``make``'s venv after a failed or old set-up.

* the excerpt checks pass when the tree sits in a folder named ``lattn`` (headers are relative to the package);
* ``python -m lattn.notebooks --execute`` on an unchanged notebook leaves ``git status`` empty (slow: one notebook);
* ``.ci/run`` started from a checkout in a folder with another name runs from a clone named ``lattn``;
* a script saved in the folder above the clone imports the package after ``pip install -e .`` (slow: a venv and an
  editable install, without dependencies);
* ``make venv`` repairs a venv without pip or with an old Python, refuses with the fix when it cannot, and the stamps
  of a broken venv count as stale (slow: it makes real venvs; it never installs torch: ``venv`` stops before it).

The copies hold the git-tracked files as they are on disk (uncommitted edits included), so the tests check the tree
under test, not its last commit.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/01_what_is_latent_attention.ipynb"  # the quickest notebook with timing lines
GIT = ["git", "-c", "user.name=lattn tests", "-c", "user.email=tests@lattn.invalid", "-c", "init.defaultBranch=main"]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def _is_checkout() -> bool:
    if shutil.which("git") is None:
        return False
    return subprocess.run(["git", "rev-parse", "--git-dir"], cwd=ROOT, capture_output=True).returncode == 0


needs_checkout = pytest.mark.skipif(not _is_checkout(), reason="needs git and a git checkout of lattn")


def tracked_copy(parent: Path, *, commit: bool = False) -> Path:
    """``parent/lattn``: the tracked files of this checkout as they are on disk (a fresh repository with them
    committed when ``commit``)."""
    dest = parent / "lattn"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():  # a tracked file deleted on disk is left out, as in the tree under test
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    if commit:
        _git("init", "-q", cwd=dest)
        _git("add", "-A", cwd=dest)
        _git("commit", "-q", "-m", "copy of the tree under test", cwd=dest)
    return dest


def _run_python(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


# --- excerpt headers in a folder named lattn -----------------------------------------------------------------------

CHECKS = r"""
import glob, importlib, json, re, sys
import pytest
import lattn
from lattn.viz.source import excerpt

assert lattn.__file__.startswith({root!r}), lattn.__file__  # the copy's package, not an installed one
args = ["-q", "-p", "no:nbval", "-p", "no:cacheprovider", "-o", "addopts=-ra", "tests/test_source_excerpt.py"]
if pytest.main(args) != 0:
    sys.exit("the excerpt tests failed")
for path in sorted(glob.glob("notebooks/*.ipynb")):  # every stored excerpt header names the file as excerpt() does
    for cell in json.load(open(path))["cells"]:
        for out in cell.get("outputs", []):
            text = "".join(out.get("data", {{}}).get("text/plain", "")) + "".join(out.get("text", ""))
            for file, cls, method in re.findall(r"^# (lattn/\S+\.py) · (\w+)\.(\w+), lines", text, re.M):
                module = importlib.import_module(file[:-3].replace("/", ".").removesuffix(".__init__"))
                header = excerpt(getattr(module, cls), method).split(" · ")[0]
                assert header == f"# {{file}}", (path, file, header)
                print("stored header ok:", path, file, cls, method)
"""


@needs_checkout
def test_excerpt_checks_pass_in_a_folder_named_lattn(tmp_path):
    """The suite's excerpt tests and every stored excerpt header, run from ``…/lattn/`` (``git clone``'s folder)."""
    copy = tracked_copy(tmp_path)
    run = _run_python(["-c", CHECKS.format(root=str(copy))], copy, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "stored header ok: notebooks/04" in run.stdout  # notebook 04's stored excerpts were found and checked


# --- CI runs from a clone named lattn ---------------------------------------------------------------------------


@needs_checkout
def test_ci_runs_from_a_clone_named_lattn(tmp_path):
    """``.ci/run``'s opening (up to ``running in …``), with the rest replaced by a stand-in that reports where it runs
    and exits 3: from ``…/checkout`` it clones HEAD into ``…/lattn`` and passes the exit code on; in a folder named
    ``lattn`` it runs in place."""
    marker = 'stamp "running in $PWD"\n'
    script = (ROOT / ".ci/run").read_text()
    assert marker in script, "the test cuts .ci/run after its line 'stamp \"running in $PWD\"'"
    opening = script.split(marker)[0] + marker
    stand_in = 'echo "ran in $PWD at $(git rev-parse --short HEAD)"; exit 3\n'
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    (checkout / ".ci/run").write_text(opening + stand_in)
    _git("init", "-q", cwd=checkout)
    _git("add", "-A", cwd=checkout)
    _git("commit", "-q", "-m", "ci", cwd=checkout)
    head = _git("rev-parse", "--short", "HEAD", cwd=checkout).strip()
    for folder, where in ((checkout, "/lattn at "), (tmp_path / "lattn", f"{tmp_path}/lattn at ")):
        if folder.name == "lattn":
            shutil.copytree(checkout, folder)
        run = subprocess.run(["bash", ".ci/run"], cwd=folder, capture_output=True, text=True, timeout=120)
        assert run.returncode == 3, run.stdout + run.stderr
        assert f"{where}{head}" in run.stdout, run.stdout
        assert folder.name != "checkout" or f"ran in {checkout}" not in run.stdout


# --- re-execution leaves a clean tree ------------------------------------------------------------------------------


def _cell(source: str, *outputs: dict) -> dict:
    import nbformat

    return nbformat.v4.new_code_cell(source, outputs=[nbformat.from_dict(o) for o in outputs], execution_count=1)


def _stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def _picture(png: str, text: str = "interactive explorer: run the notebook to move the controls") -> dict:
    data = {"image/png": png, "text/plain": text}
    return {"output_type": "execute_result", "execution_count": 1, "data": data, "metadata": {}}


def test_pin_cpu_kernels_asks_for_avx2_on_x86_and_keeps_a_value_already_set(monkeypatch):
    import platform

    from lattn.notebooks import pin_cpu_kernels

    for machine, preset, expected in [("x86_64", None, "avx2"), ("AMD64", None, "avx2"), ("aarch64", None, None),
                                      ("x86_64", "default", "default")]:  # fmt: skip
        monkeypatch.setattr(platform, "machine", lambda machine=machine: machine)
        if preset is None:
            monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
        else:
            monkeypatch.setenv("ATEN_CPU_CAPABILITY", preset)
        pin_cpu_kernels()
        assert os.environ.get("ATEN_CPU_CAPABILITY") == expected, machine


def _png(shift: int, width: int = 8) -> str:
    """A small RGBA picture as a notebook stores it (base64 PNG); ``shift`` raises one pixel's red level."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    pixels = np.full((6, width, 4), 120, dtype=np.uint8)
    pixels[2, 3, 0] += shift
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    ("source", "stored", "new", "kept"),
    [  # the rule in lattn.notebooks' docstring, case by case
        ("fit()", _stream("loss 0.69 (400 steps, 9.7 s)\n"), _stream("loss 0.69 (400 steps, 12.1 s)\n"), True),
        ("fit()", _stream("loss 0.69 (400 steps, 9.7 s)\n"), _stream("loss 0.70 (400 steps, 9.7 s)\n"), False),
        ("# NBVAL_IGNORE_OUTPUT\nt()", _stream("full   43.0 ms\n"), _stream("full  143.5 ms\n"), True),
        ("# NBVAL_IGNORE_OUTPUT\nt()", _stream("full 43.0 ms\n"), _stream("full 43.0 ms\nlatent 2 ms\n"), False),
        ("# NBVAL_IGNORE_OUTPUT\nt()", _picture("AAAA", "43 ms"), _picture("BBBB", "41 ms"), True),
        ("# NBVAL_IGNORE_OUTPUT\nexplorer", _picture("AAAA"), _picture("BBBB"), False),
        ("print(x)", _stream("x = 3\n"), _stream("x = 4\n"), False),
        ("show(fig)", _picture(_png(0), "fig"), _picture(_png(16), "fig"), True),  # rounding: within 16/255
        ("show(fig)", _picture(_png(0), "fig"), _picture(_png(17), "fig"), False),  # more: stored anew
        ("show(fig)", _picture(_png(0), "fig"), _picture(_png(0, width=9), "fig"), False),  # another size
        ("show(fig)", _picture(_png(0), "fig"), _picture(_png(16), "other"), False),  # the text changed too
    ],
)
def test_executor_keeps_stored_outputs_that_differ_only_in_timings(source, stored, new, kept):
    import nbformat

    from lattn.notebooks import keep_stable, sanitize_masks

    nb = nbformat.v4.new_notebook(cells=[_cell(source, new)])
    masks = sanitize_masks(ROOT / NOTEBOOK)
    assert (r"steps, \d+(\.\d+)? s\)", "steps, T s)") in masks  # read from tests/nbval_sanitize.cfg
    assert keep_stable(nb, [[nbformat.from_dict(stored)]], masks) == int(kept)
    assert nb.cells[0].outputs == [stored if kept else new]


def _changed_cells(copy: Path, notebook: str) -> list[str]:
    old = json.loads(_git("show", f"HEAD:{notebook}", cwd=copy))["cells"]
    new = json.loads((copy / notebook).read_text())["cells"]
    if len(old) != len(new):
        return [f"{len(old)} cells stored, {len(new)} after execution"]
    changed = []
    for i, (a, b) in enumerate(zip(old, new)):
        if a != b:
            kinds = {k for x, y in zip(a.get("outputs", []), b.get("outputs", [])) for k in {*x, *x.get("data", {})}
                     if x.get(k, x.get("data", {}).get(k)) != y.get(k, y.get("data", {}).get(k))}  # fmt: skip
            changed.append(f"c{i} ({', '.join(sorted(kinds - {'data'})) or 'cell'}): {''.join(a['source'])[:60]!r}")
    return changed


@needs_checkout
@pytest.mark.slow
@pytest.mark.scratch
def test_re_executing_an_unchanged_notebook_leaves_git_status_empty(tmp_path):
    copy = tracked_copy(tmp_path, commit=True)
    run = _run_python(["-m", "lattn.notebooks", "--execute", NOTEBOOK], copy, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    print(run.stdout)  # the run-all time and how many cells kept their stored outputs
    status = _git("status", "--porcelain", cwd=copy)
    assert status == "", f"re-execution changed the tree: {status} in cells {_changed_cells(copy, NOTEBOOK)}"


# --- pip install -e . and a script in the folder above the clone -------------------------------------------------

SCRIPT = """import importlib.util
spec = importlib.util.find_spec("lattn")  # finds, runs nothing (the scratch venv has no torch)
print(spec.origin)
"""


@needs_checkout
@pytest.mark.slow
@pytest.mark.scratch
def test_a_script_above_the_clone_finds_the_package_after_an_editable_install(tmp_path):
    """``…/lattn`` (the clone, no ``__init__.py``) is on a script's path when the script sits beside it: Python must
    still find the package inside it, not make the clone's folder an empty namespace package."""
    copy = tracked_copy(tmp_path)
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, capture_output=True)
    python = str(tmp_path / "venv/bin/python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "-e", str(copy)],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    (tmp_path / "script.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as a user's shell has it
    run = subprocess.run([python, "script.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.stdout.strip() == str(copy / "lattn" / "__init__.py"), run.stdout + run.stderr


# --- make venv: a failed or old set-up is repaired or refused with the fix ----------------------------------------


def _old_python() -> str | None:
    """A Python older than 3.10 on this machine (PATH or pyenv's versions), if any."""
    names = [f"python3.{minor}" for minor in (9, 8, 7)]
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [shutil.which(n) for n in names] + sorted(glob.glob(f"{pyenv}/versions/3.[6-9].*/bin/python3"))
    for path in filter(None, candidates):
        probe = subprocess.run([path, "-c", "import sys; print(sys.version_info < (3, 10))"], capture_output=True)
        if probe.stdout.strip() == b"True":
            return path
    return None


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def _make(folder: Path, *args: str) -> subprocess.CompletedProcess:
    drop = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VENV", "PYTHON", "TORCH", "TORCH_INDEX"}  # make test's own make
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run(["make", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture
def project(tmp_path) -> Path:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def _venv_python(project: Path) -> str:
    version = project / ".venv/bin/python"
    probe = "import sys, pip; print('%d.%d' % sys.version_info[:2])"
    return subprocess.run([version, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
@pytest.mark.scratch
def test_make_venv_repairs_a_venv_without_pip(project):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", ".venv"], cwd=project, check=True)
    for stamp in (".torch", ".dev"):
        (project / ".venv" / stamp).touch()  # as if torch had been installed: make must not trust these
    dry = _make(project, "-n", ".venv/.dev")
    assert "pip install -q -e" in dry.stdout, dry.stdout + dry.stderr  # the stamps count as stale
    run = _make(project, "venv", f"PYTHON={sys.executable}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert ".venv holds Python 3." in run.stdout and "without pip" in run.stdout and "making it again" in run.stdout
    assert tuple(map(int, _venv_python(project).split("."))) >= (3, 10)
    assert "Nothing to be done" in _make(project, "venv").stdout  # a sound venv is reused as it is


@pytest.mark.slow
@pytest.mark.scratch
def test_make_venv_rebuilds_a_venv_of_an_old_python(project):
    old = _old_python()
    if old is None:  # no older Python here: a stand-in venv Python that answers the probe as Python 3.8.18 would
        (project / ".venv/bin").mkdir(parents=True)
        _script(project / ".venv/bin/python", 'case "$*" in *version_info*) echo "old 3.8.18";; *) exit 1;; esac\n')
        version = "3.8.18"
    else:
        subprocess.run([old, "-m", "venv", "--without-pip", ".venv"], cwd=project, check=True)
        probe = [old, "-c", "import platform; print(platform.python_version())"]
        version = subprocess.run(probe, capture_output=True, text=True).stdout.strip()
    run = _make(project, "venv", f"PYTHON={sys.executable}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f".venv holds Python {version} (" in run.stdout and "older than 3.10: making it again" in run.stdout
    assert tuple(map(int, _venv_python(project).split("."))) >= (3, 10)


@pytest.mark.slow
@pytest.mark.scratch
def test_make_venv_refuses_an_old_python_and_keeps_the_venv(project):
    old = _old_python() or _script(
        project / "python-old", 'case "$1" in --version) echo "Python 3.8.18";; *) exit 1;; esac\n'
    )
    (project / ".venv").mkdir()  # a venv with no Python: to be made again, but not by an old Python
    run = _make(project, "venv", f"PYTHON={old}")
    assert run.returncode != 0
    assert f"lattn needs Python >= 3.10; '{old}' is Python 3." in run.stdout
    assert "Try: make PYTHON=python3.12" in run.stdout
    assert (project / ".venv").is_dir()  # refused before anything was removed


@pytest.mark.slow
@pytest.mark.scratch
def test_make_venv_refuses_with_the_fix_when_the_new_venv_has_no_pip(project):
    """A Python whose ensurepip is missing (Debian without python3-venv) makes venvs without pip: say how to fix it."""
    fake = _script(
        project / "python-no-ensurepip",
        f'if [ "$1" = -m ] && [ "$2" = venv ]; then shift 2; exec {sys.executable} -m venv --without-pip "$@"; fi\n'
        f'exec {sys.executable} "$@"\n',
    )
    run = _make(project, "venv", f"PYTHON={fake}")
    assert run.returncode != 0
    assert "made a venv without pip: its ensurepip is missing or failed." in run.stdout
    assert "apt-get install python3-venv" in run.stdout and "make PYTHON=python3.12" in run.stdout
    assert not (project / ".venv").exists()  # no half-made venv left for the next run to trip over
