# Every target installs what it needs first: a fresh clone needs only `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup test lint bench demo demo-archivist up clean gate gate-paired gate-app baseline \
	experiment resilience

setup: $(STAMP)

$(STAMP): pyproject.toml faults/server/_splice.c  # the C source: reinstall rebuilds the extension
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
	$(BIN)/lint-imports

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Experiments run with `python -m experiments` (the old `python -m faults` still works).

# The main tour: the reference stack under ~3 min of VOD and auth load, one fault per link,
# then the verdict, the data audit and an HTML report (config/experiments/demo.toml).
demo: $(STAMP)
	$(BIN)/python -m experiments run config/experiments/demo.toml --report

# The tour on the real Archivist: the stack hosts the public Flask app from its checkout
# (make demo-archivist ARCHIVIST_SRC=PATH), its workload runs, Redis goes down, then
# PostgreSQL turns slow; verdict, audit and HTML report (config/experiments/archivist-demo.toml).
demo-archivist: $(STAMP)
	@test -n "$(ARCHIVIST_SRC)" || { echo "usage: make demo-archivist ARCHIVIST_SRC=<checkout of the Archivist Flask app>"; exit 2; }
	$(BIN)/python -m experiments run config/experiments/archivist-demo.toml --app-src "$(ARCHIVIST_SRC)" --report

# One resilience experiment: make experiment NAME=postgres-down (config/experiments/NAME.toml);
# on the real Archivist: make experiment NAME=archivist-redis-down ARCHIVIST_SRC=PATH, or any
# experiment with APP=archivist-flask ARCHIVIST_SRC=PATH
experiment: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make experiment NAME=<one of: $$(ls config/experiments | sed 's/\.toml$$//' | tr '\n' ' ')>"; exit 2; }
	$(if $(ARCHIVIST_SRC),ARCHIVIST_SRC="$(ARCHIVIST_SRC)") $(BIN)/python -m experiments run $(NAME) $(if $(APP),--app $(APP))

# The whole catalogue on one stack (bounded: 30 min), then runs/resilience-*/scorecard.{md,png}
resilience: $(STAMP)
	$(BIN)/python -m experiments resilience --budget 30m

up: $(STAMP)
	$(BIN)/python -m testbed up

clean:
	rm -rf $(VENV) .stack runs/.tmp .pytest_cache .mypy_cache .ruff_cache

# Performance gate: the gate's own seeded headless load ([run] of config/gate.toml) on a stack
# started for it (on free ports, stopped after), gated against its baseline. The stack hosts
# config/stack.toml's app, or APP (make gate APP=archivist-flask ARCHIVIST_SRC=PATH): a real
# app gets its own workload, baseline and checks ([apps.APP] of config/gate.toml).
GATE_RUN      ?= runs/gate-latest
# ARCHIVIST_SRC only with APP: exported for the tests, it must not turn the reference gate
# into a refusal (without APP the gate reads it itself when config/stack.toml names an app)
GATE_TARGET   := $(if $(APP),--app $(APP) $(if $(ARCHIVIST_SRC),--app-src "$(ARCHIVIST_SRC)"))

gate: $(STAMP)
	rm -rf $(GATE_RUN)
	$(BIN)/python -m analysis gate --start-stack --run-dir $(GATE_RUN) $(GATE_TARGET) \
		$(if $(GATE_BASELINE),--baseline $(GATE_BASELINE)) \
		--junit $(GATE_RUN)/gate.xml --report $(GATE_RUN)/report.html

# Paired gate: GATE_REF's stack and this tree's, loaded in alternating slices in one run and
# compared pair by pair, so a busy machine is not taken for slower code ([paired] of
# config/gate.toml). Prove it catches a regression: make gate-paired GATE_PAIRED_ARGS=
# "--candidate-regression slow-list".
GATE_REF         ?= main
GATE_PAIRED_ARGS ?=

gate-paired: $(STAMP)
	mkdir -p $(GATE_RUN)
	$(BIN)/python -m analysis gate --against $(GATE_REF) $(GATE_PAIRED_ARGS) \
		--junit $(GATE_RUN)/gate-paired.xml

# Gate a change to the real app: OLD (a ref of NEW's repository, or a second checkout's path)
# and NEW hosted side by side, loaded in alternating slices ([apps.archivist-flask.paired]):
# make gate-app ARCHIVIST_SRC=~/src/Archivist GATE_OLD=origin/main
GATE_OLD ?= origin/main
APP      ?= archivist-flask

gate-app: $(STAMP)
	@test -n "$(ARCHIVIST_SRC)" || { echo "usage: make gate-app ARCHIVIST_SRC=<NEW checkout> [GATE_OLD=<ref or path>]"; exit 2; }
	mkdir -p $(GATE_RUN)
	$(BIN)/python -m analysis gate --app $(APP) --app-src "$(ARCHIVIST_SRC)" --against "$(GATE_OLD)" \
		--junit $(GATE_RUN)/gate-app.xml

# Record the gate's load anew and store it as the baseline ([run] baseline, or GATE_BASELINE).
baseline: $(STAMP)
	rm -rf $(GATE_RUN)
	$(BIN)/python -m analysis baseline record --run-dir $(GATE_RUN) $(GATE_TARGET) \
		$(if $(GATE_BASELINE),--name $(GATE_BASELINE))
