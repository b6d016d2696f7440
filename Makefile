# One screen of tasks. Each target sets up the virtualenv it needs first: `run` only what
# ddbridge needs to run, the others the test and lint toolchain too.
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
EMULATOR_PORT ?= 8126

.PHONY: run test lint bench operations

$(BIN)/.installed-run: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(BIN)/.installed: $(BIN)/.installed-run
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: $(BIN)/.installed-run  ## ddbridge end to end: PostgreSQL, Redis, emulator, API, worker
	$(BIN)/ddbridge dev --api-port $(PORT) --emulator-port $(EMULATOR_PORT)

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
