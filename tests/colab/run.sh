#!/usr/bin/env bash
# The Colab-like check. Builds .venv-colab (Colab's widget stack: tests/colab/requirements.txt, plus lattn) when it
# is missing or its inputs changed, then
#   1. runs every notebook in it and moves every explorer in-kernel (tests/colab/check_explorers.py);
#   2. runs the browser tests (tests/browser) in the classic Notebook 6.5 of that venv, i.e. with ipywidgets 7.7.1's
#      views in the page, as in Colab (needs /usr/bin/chromium; COLAB_BROWSER=0 skips this part).
# Usage, from anywhere:
#   bash tests/colab/run.sh [notebooks/NN_x.ipynb ...]
# Environment: PYTHON (interpreter the venv is made from, default python3), COLAB_VENV (default .venv-colab),
# TORCH_SPEC (pip requirement for torch, default torch==2.13.0).
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${COLAB_VENV:-.venv-colab}"
python="${PYTHON:-python3}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"  # as the main env (CPU wheel); installed first, so nothing below pulls another
inputs="$(cat tests/colab/requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"

start=$SECONDS
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.lattn-inputs" 2>/dev/null)" = "$inputs" ]; then
  echo "colab-like env: reusing $venv"
else
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # shellcheck disable=SC2086  # TORCH_SPEC may carry pip options (e.g. --index-url ...)
  "$venv/bin/pip" install -q $torch_spec
  "$venv/bin/pip" install -q -r tests/colab/requirements.txt -e .
  echo "$inputs" > "$venv/.lattn-inputs"
  echo "colab-like env: built $venv in $((SECONDS - start)) s"
fi

start=$SECONDS
rc=0
"$venv/bin/python" tests/colab/check_explorers.py "$@" || rc=$?
echo "colab-like run (nbclient + in-kernel explorer check): $((SECONDS - start)) s"

if [ "${COLAB_BROWSER:-1}" != "0" ]; then
  start=$SECONDS
  select=()
  if [ $# -gt 0 ]; then  # only the notebooks named, by their stems (the tests' ids)
    expr=""
    for nb in "$@"; do expr="${expr:+$expr or }$(basename "$nb" .ipynb)"; done
    select=(-k "$expr")
  fi
  LATTN_FRONTEND=classic "$venv/bin/python" -m pytest -o addopts=-ra -p no:cacheprovider tests/browser -q \
    "${select[@]}" || rc=$?
  echo "colab-like browser tests (classic Notebook 6.5, ipywidgets 7.7.1 views): $((SECONDS - start)) s"
fi
exit $rc
