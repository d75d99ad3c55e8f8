# Two commands do all the setup on a fresh machine with Python 3.11+ and make:
#   make test   create .venv, install with test extras, run ruff, mypy and pytest
#   make demo   create .venv and run the local collector, the example app and simulated users

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check neatlogs_web tests examples benchmarks
	$(BIN)/ruff format --check neatlogs_web tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

demo: $(STAMP)
	$(BIN)/neatlogs-web demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
