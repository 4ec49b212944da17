"""Packaging: environment.yml names the same dependencies as pyproject.toml; the CLIs exist."""

import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib  # Python ≥ 3.11
except ModuleNotFoundError:  # Python 3.10: the same parser, from the test extra
    import tomli as tomllib

ROOT = Path(__file__).parent.parent
CONDA_TO_PIP = {"pytorch": "torch"}


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
    return m.group(1).lower(), m.group(2).replace(" ", "")


def test_environment_yml_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(_split(r) for r in meta["dependencies"] + meta["optional-dependencies"]["lab"])
    conda, pip_section = {}, []
    in_pip = False
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        item = line.strip()
        if item == "- pip:":
            in_pip = True
        elif item.startswith("- ") and in_pip and line.startswith("      "):
            pip_section.append(item[2:])
        elif item.startswith("- ") and line.startswith("  - "):
            in_pip = False
            name, spec = _split(item[2:])
            conda[CONDA_TO_PIP.get(name, name)] = spec
    assert pip_section == ["-e ."]  # a learner's environment: no test tools
    assert conda.pop("python") == ">=" + meta["requires-python"].lstrip(">=")
    assert conda.pop("pip") == ""
    assert conda == wanted, f"environment.yml {conda} vs pyproject {wanted}"


def test_dependencies_have_lower_bounds_only():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in meta["dependencies"]:
        assert "==" not in req and "~=" not in req, req
    assert any(r.replace(" ", "") == "ipywidgets>=7.6,<9" for r in meta["dependencies"])


def test_cli_help():
    for mod in ("lattn.notebooks", "lattn.bench", "lattn.experiments"):
        out = subprocess.run([sys.executable, "-m", mod, "--help"], capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0 and "usage" in out.stdout, out.stderr
