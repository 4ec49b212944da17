#!/usr/bin/env bash
# The Colab-like check. Builds .venv-colab (Colab's widget stack: tests/colab/requirements.txt, plus lattn) when it
# is missing or its inputs changed, then runs the browser tests (tests/browser) in the classic Notebook 6.5 of that
# venv, i.e. with ipywidgets 7.7.1's views in the page, as in Colab (needs /usr/bin/chromium). In each notebook's
# kernel, once the page has run it, the in-kernel check of tests/colab/check_explorers.py also runs (every control of
# every explorer moved in the kernel; the kernel's package versions = requirements.txt): each notebook runs once.
# With COLAB_BROWSER=0 (or no Chromium, outside CI) only the in-kernel check runs, on notebooks run by nbclient.
# Usage, from anywhere:
#   bash tests/colab/run.sh [notebooks/NN_x.ipynb ...]
#   bash tests/colab/run.sh --build-only     # only (re)build the venv (CI builds it while `make test` runs)
# Environment: PYTHON (interpreter the venv is made from; default: the first Python >= 3.12 found, as Colab runs
# 3.12+), COLAB_VENV (default .venv-colab), COLAB_TORCH (pip requirement for torch; default "torch", PyPI's default
# build, which carries CUDA — what Colab and most learners have, and what logs CUDA warnings on machines without a GPU).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${COLAB_VENV:-.venv-colab}"
find_python() {  # the first interpreter >= 3.12: on PATH, then pyenv's versions (not always on PATH)
  local p
  for p in python3.13 python3.12 /root/.pyenv/versions/3.13*/bin/python3.13 /root/.pyenv/versions/3.12*/bin/python3.12 \
           "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[23]*/bin/python3.1[23] python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$p"
      return
    fi
  done
  echo "colab-like: no Python >= 3.12 found (Colab runs 3.12+); set PYTHON=..." >&2
  return 1
}
python="${PYTHON:-$(find_python)}"
torch_spec="${COLAB_TORCH:-torch}"  # installed first, so nothing below pulls another
inputs="$("$python" --version 2>&1; echo "$torch_spec"; cat tests/colab/requirements.txt pyproject.toml)"
inputs="$(echo "$inputs" | sha256sum | cut -d' ' -f1)"

start=$SECONDS
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.lattn-inputs" 2>/dev/null)" = "$inputs" ]; then
  echo "colab-like env: reusing $venv"
else
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # shellcheck disable=SC2086  # COLAB_TORCH may carry pip options (e.g. --index-url ...)
  "$venv/bin/pip" install -q --no-compile $torch_spec
  "$venv/bin/pip" install -q --no-compile -r tests/colab/requirements.txt -e .
  echo "$inputs" > "$venv/.lattn-inputs"
  echo "colab-like env: built $venv ($("$venv/bin/python" --version), torch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')) in $((SECONDS - start)) s"
fi
if [ "${1:-}" = "--build-only" ]; then
  exit 0
fi

start=$SECONDS
browser="${COLAB_BROWSER:-1}"
chromium="${LATTN_CHROMIUM:-/usr/bin/chromium}"
if [ "$browser" != "0" ] && [ ! -x "$chromium" ] && [ -z "${CI:-}" ]; then
  echo "colab-like: no Chromium at $chromium (apt-get install chromium): in-kernel check only, without the browser"
  browser=0
fi

if [ "$browser" != "0" ]; then
  select=()
  if [ $# -gt 0 ]; then  # only the notebooks named, by their stems (the tests' ids)
    expr=""
    for nb in "$@"; do expr="${expr:+$expr or }$(basename "$nb" .ipynb)"; done
    select=(-k "$expr")
  fi
  rc=0
  LATTN_FRONTEND=classic LATTN_KERNEL_CHECK=colab "$venv/bin/python" -m pytest -o addopts=-ra -p no:cacheprovider \
    tests/browser -q "${select[@]}" || rc=$?
  echo "colab-like browser tests + in-kernel check (classic Notebook 6.5, ipywidgets 7.7.1): $((SECONDS - start)) s"
else
  rc=0
  "$venv/bin/python" tests/colab/check_explorers.py "$@" || rc=$?
  echo "colab-like in-kernel check (nbclient, no browser): $((SECONDS - start)) s"
fi
exit $rc
