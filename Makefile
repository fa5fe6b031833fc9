# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format venv broker-up broker-down bench clean constraints

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c constraints.txt
	touch $(STAMP)

## Pin the runtime dependencies to the installed (tested) versions: constraints.txt.
constraints: venv
	$(BIN)/python scripts/pin-constraints.py

## Start a local broker (unless KTF_BOOTSTRAP_SERVERS is set), run a worker with the
## example handlers, produce tasks, print one summary line, stop what was started.
demo: venv
	$(BIN)/python -m framework.demo run --count $${DEMO_COUNT:-3000}

## The whole suite against a real broker (started by the test session if needed).
test: venv
	@if [ -x scripts/install-helm.sh ]; then scripts/install-helm.sh; fi
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

broker-up: venv
	$(BIN)/ktf dev kafka up

broker-down: venv
	$(BIN)/ktf dev kafka down

bench: venv
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
