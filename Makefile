# One-command set-up: every target creates and uses .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST_WORKERS ?= 2

.PHONY: demo test test-x64 test-slow lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/numpyro-hgf demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --durations=15
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --x64 --durations=5

test-x64: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --x64 --durations=15

test-slow: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q -m slow --durations=15

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check numpyro_hgf tests benchmarks examples
	$(BIN)/ruff format --check numpyro_hgf tests benchmarks examples

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/flows.py

clean:
	rm -rf $(VENV) runs .pytest_cache
