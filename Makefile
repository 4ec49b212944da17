# Two commands do all the set-up on a fresh machine (see README.md):
#   make lab        — create .venv, install lattn + JupyterLab, open the course
#   make test       — create .venv, install lattn + test tools, run the full test suite (what CI runs)
# For developers:
#   make test-fast  — the unit tests only (no notebooks, no browser): 2 to 3 minutes on 2 cores
#   make venv       — only make .venv, or repair it (a Python that does not start, is older than 3.10 or has no pip)
# TORCH picks how torch is installed (default: the small CPU-only build; if that fails, pip's error is shown and PyPI's
# default build is installed). On a machine that already has a torch wheel at hand, e.g.:  make test TORCH="torch==2.13.0"

PYTHON ?= python3
VENV ?= .venv
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH ?= torch --index-url $(TORCH_INDEX)
PY := $(VENV)/bin/python
# JupyterLab refuses to run as root (containers, CI) unless told to.
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)
export OMP_WAIT_POLICY ?= PASSIVE

# What the venv's own Python says about itself, read when make starts (before make looks at the stamps below, so a
# broken venv's stamps cannot make it look built): "ok 3.12.3", "old 3.8.18" (older than 3.10), "nopip 3.12.3"
# (pip missing: an interrupted or failed ensurepip), "broken" (no Python that runs), or nothing (no venv yet).
VENV_PROBE := import sys; v = sys.version_info; print(("old" if v < (3, 10) else "ok" \
  if __import__("importlib.util").util.find_spec("pip") else "nopip") + " %d.%d.%d" % tuple(v[:3]))
VENV_STATE := $(if $(wildcard $(VENV)),$(or $(shell $(PY) -c '$(VENV_PROBE)' 2>/dev/null),broken))

.PHONY: lab test test-fast notebooks bench colab-test clean check-python venv FORCE

check-python:
	@$(PYTHON) -c "import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)" 2>/dev/null || \
	  { echo "lattn needs Python >= 3.10; '$(PYTHON)' is $$($(PYTHON) --version 2>&1). Try: make PYTHON=python3.12"; exit 1; }

# The venv itself, checked before it is reused: a venv whose Python does not run, is older than 3.10 or has no pip is
# removed and made again from $(PYTHON) (a failed first run is repaired by the next one). Installs nothing else.
venv_why.old = holds Python $(word 2,$(VENV_STATE)) ($(shell readlink -f $(PY))), older than 3.10
venv_why.nopip = holds Python $(word 2,$(VENV_STATE)) without pip (an interrupted or failed venv set-up)
venv_why.broken = has no Python that runs ($(PY) is missing or fails to start)
venv:
ifneq ($(firstword $(VENV_STATE)),ok)
	@$(if $(VENV_STATE),echo "$(VENV) $(venv_why.$(firstword $(VENV_STATE))): making it again with $(PYTHON)")
	@$(MAKE) --no-print-directory check-python
	@rm -rf -- "$(VENV)"
	@$(PYTHON) -m venv "$(VENV)" || true
	@$(PY) -c "import pip" 2>/dev/null || { rm -rf -- "$(VENV)"; \
	  echo "'$(PYTHON)' ($$($(PYTHON) --version 2>&1)) made a venv without pip: its ensurepip is missing or failed."; \
	  echo "Fix: install the venv module (Debian/Ubuntu: apt-get install python3-venv, or python3.X-venv for your" \
	    "Python), or use another Python: make PYTHON=python3.12"; exit 1; }
	@echo "$(VENV): made with $$($(PY) --version) ($$(readlink -f $(PY)))"
endif

# The venv counts as built only once torch imports in it (a failed first run is repaired by the next one); a venv
# that `venv` rebuilds makes every stamp stale.
$(VENV)/.torch: $(if $(filter-out ok,$(firstword $(VENV_STATE))),FORCE) | venv
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q --retries 1 --timeout 15 $(TORCH) 2>$(VENV)/.pip-log || \
	  { echo "torch: '$(TORCH)' could not be installed for $$($(PY) --version):" \
	      "$$(grep -m1 ERROR $(VENV)/.pip-log || tail -n 1 $(VENV)/.pip-log)"; \
	    echo "torch: installing the default build from PyPI instead (on Linux it carries CUDA: several GB)"; \
	    $(PY) -m pip install -q torch; }
	@$(PY) -W ignore -c "import torch" && touch $@

FORCE:

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
