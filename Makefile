PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast test-busy lint bench test-matrix phoenix prometheus screenshot clean

install: $(STAMP)

## the package as users get it (newest livekit-agents and OpenTelemetry it allows), then
## the dev tools and the devkit, which cannot change those versions; one line per package
$(STAMP): pyproject.toml devkit/pyproject.toml scripts/install_dev.sh
	@echo "Installing livekit-otel, its dev tools and the devkit into $(VENV) (1 to 2 minutes the first time)"
	PYTHON=$(PYTHON) bash scripts/install_dev.sh $(VENV)
	touch $(STAMP)

## the main job: a scripted voice call traced end to end, offline
demo: install
	$(BIN)/python examples/offline_demo.py

OLDEST_RELEASE := 1.3.6

## the suite on the oldest supported livekit-agents release, then the whole suite (e2e
## tests against a real Arize Phoenix and a real Prometheus included) on the newest
test: install phoenix prometheus
	bash scripts/test_matrix.sh $(OLDEST_RELEASE)
	@$(BIN)/python -c 'import importlib.metadata as m; print("Testing with livekit-agents", m.version("livekit-agents"), "and opentelemetry-sdk", m.version("opentelemetry-sdk"))'
	$(BIN)/python -m pytest -q

## everything but the e2e backend tests
test-fast: install
	$(BIN)/python -m pytest -q -m "not e2e"

## the whole suite on the newest release while two spinning processes keep both cores busy
## (scripts/busy.sh stops them by process id afterwards): the timing tests take their truth
## from the script's own clock, so they hold when the machine is slow
test-busy: install phoenix prometheus
	BUSY_PROCESSES=2 BUSY_PYTHON=$(PYTHON) bash scripts/busy.sh $(BIN)/python -m pytest -q

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

## Debian's Prometheus server for the metrics e2e tests (apt-get: needs root when it is
## missing; the tests start their own server on a free loopback port)
prometheus:
	bash scripts/install_prometheus.sh

## a screenshot of the demo trace in Phoenix (docs/phoenix-trace.png)
screenshot: install phoenix
	bash scripts/install_chromium.sh
	$(BIN)/python scripts/screenshot_demo.py

## everything install, test, demo and bench created in the checkout: the virtual environments
## (.venv, .venvs for the matrix, .venv-phoenix), tool caches, demo traces (traces/), bench
## results, build outputs; the Debian packages (prometheus, chromium) stay installed
clean:
	rm -rf $(VENV) .venvs .venv-phoenix .pytest_cache .mypy_cache .ruff_cache \
		traces .phoenix bench/results build dist
	find . -path ./.git -prune -o \( -name '*.egg-info' -o -name __pycache__ \) -type d -prune \
		-exec rm -rf {} +
