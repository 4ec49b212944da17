# Two commands do all the set-up on a fresh machine (see README.md):
#   make lab    — create .venv, install lattn + JupyterLab, open the course
#   make test   — create .venv, install lattn + test tools, run the full test suite
# TORCH picks how torch is installed (default: the small CPU-only build). On a machine that already
# has a torch wheel at hand, e.g.:  make test TORCH="torch==2.13.0"

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch --index-url https://download.pytorch.org/whl/cpu
PY := $(VENV)/bin/python
# JupyterLab refuses to run as root (containers, CI) unless told to.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: lab test notebooks bench colab-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)

$(VENV)/.lab: $(PY) pyproject.toml
	$(PY) -m pip install -q -e ".[lab]"
	touch $@

$(VENV)/.dev: $(PY) pyproject.toml
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

lab: $(VENV)/.lab
	$(VENV)/bin/jupyter lab notebooks/ $(LAB_ARGS)

test: $(VENV)/.dev
	$(VENV)/bin/pytest

notebooks: $(VENV)/.dev
	$(PY) -m lattn.notebooks --execute

bench: $(VENV)/.dev
	$(PY) -m lattn.bench complexity --quick

colab-test:
	bash tests/colab/run.sh

clean:
	rm -rf $(VENV) .venv-colab artifacts
