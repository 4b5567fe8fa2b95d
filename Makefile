# Every target installs what it needs first: a fresh clone needs only `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup test lint bench demo up clean experiment resilience

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

demo: $(STAMP)
	$(BIN)/python -m faults.demo

# One resilience experiment: make experiment NAME=postgres-down (config/experiments/NAME.toml)
experiment: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make experiment NAME=<one of: $$(ls config/experiments | sed 's/\.toml$$//' | tr '\n' ' ')>"; exit 2; }
	$(BIN)/python -m faults run config/experiments/$(NAME).toml

# The whole catalogue on one stack (bounded: 30 min), then runs/resilience-*/scorecard.{md,png}
resilience: $(STAMP)
	$(BIN)/python -m faults resilience --budget 30m

up: $(STAMP)
	$(BIN)/python -m testbed up

clean:
	rm -rf $(VENV) .stack runs/.tmp .pytest_cache .mypy_cache .ruff_cache
