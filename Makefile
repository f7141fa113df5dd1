PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench test-matrix phoenix screenshot clean

install: $(STAMP)

$(STAMP): pyproject.toml devkit/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e ./devkit
	touch $(STAMP)

## the main job: a scripted voice call traced end to end, offline
demo: install
	$(BIN)/python examples/offline_demo.py

OLDEST_RELEASE := 1.3.6

## the suite on the oldest supported livekit-agents release, then the whole suite (e2e
## tests against a real Arize Phoenix included) on the newest
test: install phoenix
	bash scripts/test_matrix.sh $(OLDEST_RELEASE)
	$(BIN)/python -m pytest -q

## everything but the e2e backend tests
test-fast: install
	$(BIN)/python -m pytest -q -m "not e2e"

lint: install
	$(BIN)/ruff check src devkit tests examples bench scripts
	$(BIN)/ruff format --check src devkit tests examples bench scripts
	$(BIN)/mypy

## overhead benchmark against LiveKit's built-in telemetry
bench: install
	$(BIN)/python bench/run.py

## the suite on livekit-agents 1.3.6, the last 1.5, the last 1.6 and the newest 1.8
test-matrix:
	bash scripts/test_matrix.sh

## a pinned Arize Phoenix in its own virtual environment (.venv-phoenix)
phoenix:
	bash scripts/install_phoenix.sh

## a screenshot of the demo trace in Phoenix (docs/phoenix-trace.png)
screenshot: install phoenix
	bash scripts/install_chromium.sh
	$(BIN)/python scripts/screenshot_demo.py

clean:
	rm -rf $(VENV) .venvs .venv-phoenix .pytest_cache .mypy_cache .ruff_cache traces
