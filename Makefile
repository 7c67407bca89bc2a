# The README's two commands: `make demo` (the main job) and `make test` (the whole suite).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev

.PHONY: venv demo test test-all lint bench clean

# torch is installed first and pinned: 2.13.0 is a CPU build already on these machines,
# an unpinned torch would pull a multi-GB CUDA build.
$(BIN)/rethink: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $(BIN)/rethink

venv: $(BIN)/rethink

demo: venv
	$(BIN)/rethink demo

test: venv
	$(BIN)/python -m pytest -q

test-all: venv
	$(BIN)/python -m pytest -q -m "slow or not slow"

lint: venv
	$(BIN)/ruff check src tests bench

bench: venv
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
