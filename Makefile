# The two commands a new user runs: `make demo` and `make test`.
# Each makes .venv on first use and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test

.PHONY: demo test lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check chainrule tests examples
	$(BIN)/ruff format --check chainrule tests examples

typecheck: $(STAMP)
	$(BIN)/mypy chainrule

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest chainrule tests

clean:
	rm -rf $(VENV) build *.egg-info
