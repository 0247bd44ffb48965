# Set-up and the two main commands. `make tune` runs the main job on the
# built-in default data set; `make test` runs the test suite. Both create the
# virtual environment in .venv on first use.
#
# TORCH_SPEC picks the torch build installed before everything else, unless
# .venv already has a torch that imports. The default pin matches the CPU
# wheel our CI machines keep on disk, so the torch install takes seconds (the
# whole set-up about a minute). A GPU user installs CUDA torch into a fresh
# .venv first (see the README), or installs privtune with plain
# `pip install .` into an environment that has CUDA torch.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
CONFIG ?=
OUT ?= runs/default
BIN := $(VENV)/bin

.PHONY: install tune test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

tune: install
	$(BIN)/privtune tune $(CONFIG) --out $(OUT)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
