# One entry point for local work. Everything runs from the project's own virtualenv.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell scripts/find-python)
STAMP := $(VENV)/.installed
# the DAG's package, importable as on MWAA (where plugins/ is on sys.path)
export PYTHONPATH := $(CURDIR)/plugins

.PHONY: venv test test-fast test-latest test-fallback demo up down status compose-up compose-demo compose-down compose-test compose-images venv-latest \
	bench bench-peers faults soak lint plugins-zip clean

venv: $(STAMP)

$(STAMP): requirements/dev.txt requirements/stack.txt requirements/constraints.txt
	@test -n "$(PYTHON)" || { echo "make: no Python 3.12 (scripts/find-python says how to get one)" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt -c requirements/constraints.txt
	@touch $@

## make test: the whole suite, the end-to-end run through real Airflow processes included
## (the 30 slowest tests are listed at the end: CI's time budget is spent where they say)
test: venv
	$(PY) -m pytest --durations=30

## make test-fast: everything but the end-to-end run
test-fast: venv
	$(PY) -m pytest -m "not e2e"

## make test-latest: the DAG package's unit tests on the newest Airflow and Amazon provider
VENV_LATEST ?= .venv-latest
test-latest: venv-latest
	$(VENV_LATEST)/bin/python -m pytest tests/plugins tests/dags -m "not e2e"

## make venv-latest: only test-latest's virtualenv (CI installs it while the tests run)
venv-latest: $(VENV_LATEST)/.installed

$(VENV_LATEST)/.installed: requirements/latest.txt
	@test -x $(VENV_LATEST)/bin/python || $(PYTHON) -m venv $(VENV_LATEST)
	$(VENV_LATEST)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/latest.txt
	@touch $@

## make test-fallback: the same on Airflow 3.2.1 and provider 9.25.0, the fallback if MWAA refuses
## 3.3.1 (docs/deploy.md, step 2); not in CI
VENV_FALLBACK ?= .venv-fallback
test-fallback: $(VENV_FALLBACK)/.installed
	$(VENV_FALLBACK)/bin/python -m pytest tests/plugins tests/dags -m "not e2e"

$(VENV_FALLBACK)/.installed: requirements/fallback.txt
	@test -x $(VENV_FALLBACK)/bin/python || $(PYTHON) -m venv $(VENV_FALLBACK)
	$(VENV_FALLBACK)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/fallback.txt
	@touch $@

## make demo [AUDIO_DIR=dir] [REPORT=file.json]: the pipeline end to end on the local stack
demo: venv
	$(PY) -m local.stack demo $(if $(AUDIO_DIR),--audio-dir "$(AUDIO_DIR)") $(if $(REPORT),--report "$(REPORT)")

## make up / make down: the long-running local stack, Airflow UI at http://localhost:8080
up: venv
	$(PY) -m local.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m local.stack down; fi

status: venv
	$(PY) -m local.stack status

## make compose-up / compose-demo [AUDIO_DIR=dir] / compose-down: the same stack under docker compose
## (compose-up builds stand-in base images first where no image registry is reachable)
compose-up:
	eval "$$(local/docker/standins.sh)" && docker compose up --build --detach --wait

compose-demo: venv
	$(PY) -m local.stack.compose $(if $(AUDIO_DIR),--audio-dir "$(AUDIO_DIR)") $(if $(REPORT),--report "$(REPORT)")

compose-down:
	docker compose down -v

## make compose-test: Docker installed where missing, compose up, the demo through it, down -v
compose-test: venv
	PY=$(PY) scripts/compose-test

## make compose-images: only the Docker engine and compose-test's images (CI builds them while the tests run)
compose-images: venv
	PY=$(PY) scripts/compose-test --images-only

## make bench [FILES="1000 10000"]: scale figures on the local stack (docs/benchmarks.md)
bench: venv
	$(PY) -m benchmarks.run $(if $(FILES),--files $(FILES))

## make bench-peers [FILES=1000] [DEADLINE=s]: the original's design, a stock-provider DAG and this package side by side
## (one stack, the same endpoint; docs/benchmarks.md, "Side by side")
bench-peers: venv
	$(PY) -m benchmarks.peers $(if $(FILES),--files $(FILES)) $(if $(DEADLINE),--deadline $(DEADLINE))

## make faults [PARALLEL=n]: the fault matrix, each scenario on a fresh local stack, n at once (docs/fault-matrix.md)
faults: venv
	$(PY) -m benchmarks.faults $(if $(PARALLEL),--parallel $(PARALLEL))

## make soak [FILES=1000] [SEED=n]: many files, faults drawn at random, invariants checked (docs/fault-matrix.md)
soak: venv
	$(PY) -m benchmarks.soak $(if $(FILES),--files $(FILES)) $(if $(SEED),--seed $(SEED))

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy

## make plugins-zip: the plugins.zip MWAA gets (dist/plugins.zip)
plugins-zip: venv
	$(PY) -m infra.plugins_zip --out dist/plugins.zip

clean:
	rm -rf .local dist .pytest_cache
