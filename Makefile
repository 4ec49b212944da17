# Two commands do all the set-up on a fresh machine (see README.md):
#   make lab        — create .venv, install lattn + JupyterLab, open the course
#   make test       — create .venv, install lattn + test tools, run the full test suite (what CI runs)
# For developers:
#   make test-fast  — the unit tests only (no notebooks, no browser): under 2 minutes on 2 cores
# TORCH picks how torch is installed (default: the small CPU-only build; if its index cannot be reached, the default
# build from PyPI). On a machine that already has a torch wheel at hand, e.g.:  make test TORCH="torch==2.13.0"

PYTHON ?= python3
VENV ?= .venv
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH ?= torch --index-url $(TORCH_INDEX)
PY := $(VENV)/bin/python
# JupyterLab refuses to run as root (containers, CI) unless told to.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: lab test test-fast notebooks bench colab-test clean check-python

check-python:
	@$(PYTHON) -c "import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)" 2>/dev/null || \
	  { echo "lattn needs Python >= 3.10; '$(PYTHON)' is $$($(PYTHON) --version 2>&1). Try: make PYTHON=python3.12"; exit 1; }

# The venv counts as built only once torch imports in it (a failed first run is repaired by the next one).
$(VENV)/.torch: | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q --retries 1 --timeout 15 $(TORCH) 2>/dev/null || \
	  { echo "torch: '$(TORCH)' could not be installed (no route to its index?); installing the default build from PyPI"; \
	    $(PY) -m pip install -q torch; }
	@$(PY) -W ignore -c "import torch" && touch $@

$(VENV)/.lab: $(VENV)/.torch pyproject.toml
	$(PY) -m pip install -q -e ".[lab]"
	touch $@

$(VENV)/.dev: $(VENV)/.torch pyproject.toml
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

lab: $(VENV)/.lab
	$(VENV)/bin/jupyter lab notebooks/ $(LAB_ARGS)

test: $(VENV)/.dev
	$(VENV)/bin/pytest

test-fast: $(VENV)/.dev
	$(VENV)/bin/pytest tests -q -p no:nbval -o addopts="-ra" -m "not browser and not slow" \
	  --ignore=tests/browser --ignore=tests/colab

notebooks: $(VENV)/.dev
	$(PY) -m lattn.notebooks --execute

bench: $(VENV)/.dev
	$(PY) -m lattn.bench complexity --quick --out $$(mktemp -d)

colab-test:
	bash tests/colab/run.sh

clean:
	rm -rf $(VENV) .venv-colab .venv-oldest artifacts
