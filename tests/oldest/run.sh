#!/usr/bin/env bash
# The oldest supported versions, proven: Python 3.10 and torch 2.4 (what pyproject.toml declares), PyPI's default
# torch build. Builds .venv-oldest when it is missing or its inputs changed, then runs the unit tests there, as
# `make test-fast` selects them (no notebooks, no browser, no slow tests: no runs of make or of the notebook executor
# in scratch copies, and of the shipped experiments only the quick slices): what the library does.
# Usage, from anywhere:
#   bash tests/oldest/run.sh               # build if needed, then the unit tests
#   bash tests/oldest/run.sh --build-only  # only (re)build the venv (CI builds it while `make test` runs)
# Environment: PYTHON (default: a Python 3.10 found on PATH or in pyenv's versions), OLDEST_VENV (default .venv-oldest).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${OLDEST_VENV:-.venv-oldest}"
torch_spec="torch==2.4.1"  # the oldest torch pyproject.toml admits (torch>=2.4)

find_python() {  # a Python 3.10: on PATH, then pyenv's versions (not always on PATH)
  local p
  for p in python3.10 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 /root/.pyenv/versions/3.10*/bin/python3.10; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      command -v "$p"
      return
    fi
  done
  echo "oldest: no Python 3.10 found; set PYTHON=..." >&2
  return 1
}
python="${PYTHON:-$(find_python)}"
inputs="$( ("$python" --version 2>&1; echo "$torch_spec"; cat pyproject.toml) | sha256sum | cut -d' ' -f1)"

start=$SECONDS
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.lattn-inputs" 2>/dev/null)" = "$inputs" ]; then
  echo "oldest env: reusing $venv"
else
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --no-compile --upgrade pip
  "$venv/bin/pip" install -q --no-compile "$torch_spec"
  # lattn from a copy of the tree, not editable: nothing is written into the tree (CI builds this while another
  # venv's editable install writes lattn.egg-info there); the tests import the tree's lattn all the same
  src="$(mktemp -d)"
  git ls-files -z | xargs -0 cp --parents -t "$src" 2>/dev/null || cp -r pyproject.toml README.md lattn "$src"/
  "$venv/bin/pip" install -q --no-compile "$src[test]"
  rm -rf "$src"
  echo "$inputs" > "$venv/.lattn-inputs"
  echo "oldest env: built $venv ($("$venv/bin/python" --version), torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')) in $((SECONDS - start)) s"
fi
if [ "${1:-}" = "--build-only" ]; then
  exit 0
fi

start=$SECONDS
OMP_WAIT_POLICY=PASSIVE "$venv/bin/python" -m pytest tests -q -p no:nbval -p no:cacheprovider -o addopts="-ra" \
  -m "not browser and not scratch and not slow" --ignore=tests/browser --ignore=tests/colab --ignore=tests/oldest
echo "oldest supported versions ($("$venv/bin/python" --version), torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')): unit tests in $((SECONDS - start)) s"
