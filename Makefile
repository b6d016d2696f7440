# One screen of tasks. Each target sets up the virtualenv it needs first.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench operations

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed  ## ddbridge end to end: PostgreSQL, Redis, emulator, API, worker
	$(BIN)/ddbridge dev

test: $(BIN)/.installed  ## the whole test suite (real PostgreSQL, Redis, processes, Chromium)
	scripts/ensure-chromium
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python -m bench.forward

operations: $(BIN)/.installed  ## regenerate the pass-through's table from datadog-openapi/
	$(BIN)/python -m service.passthrough.generate
