# AutoTrader — the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

# Tests run against real PostgreSQL and Redis on this machine unless told otherwise.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/autotrader
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test lint format bench faults services clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.base-installed: $(BIN)/activate requirements/base.txt
	$(PY) -m pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.base-installed requirements/dev.txt
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@

## make run: a paper-trading session (embedded default, or the full stack with DATABASE_URL+REDIS_URL)
run: $(VENV)/.base-installed
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py ensure_admin
	$(PY) manage.py run_paper_session

services:
	bash .ci/ensure_services.sh

## make test: ruff, then pytest on real PostgreSQL and Redis
# The test databases commit without waiting for the WAL flush (PGOPTIONS, read by libpq in every
# process the tests start): the same isolation and visibility, half the time per replayed bar on
# this machine. Durability is not what these tests check; the scenarios that restart PostgreSQL
# stop it with a fast shutdown, which writes every committed transaction. Production and
# `make faults` keep PostgreSQL's default (synchronous_commit=on).
TEST_PGOPTIONS ?= -c synchronous_commit=off
# The suite waits on PostgreSQL, Redis and the processes it starts more than it computes, so it
# runs in two pytest-xdist workers (each with its own test database and Redis database, and the
# fault scenarios together in one of them: tests/xdist_workers.py). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

test: $(VENV)/.dev-installed services
	bash tests/browser/ensure_chromium.sh
	bash tests/deploy/ensure_prometheus.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	PGOPTIONS="$(TEST_PGOPTIONS)" CELERY_TASK_ALWAYS_EAGER=1 \
	$(PY) -m pytest -p tests.xdist_workers -n $(TEST_WORKERS) --dist loadgroup --durations=40 $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

format: lint

## make bench: every benchmark, one JSON line each (needs PostgreSQL for ingest and API)
bench: $(VENV)/.dev-installed services
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	$(PY) benchmarks/run_all.py

## make faults: the full-size fault suite; last line is one JSON object of figures
faults: $(VENV)/.dev-installed services
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	FAULTS_FULL=1 $(PY) -m tests.faults.run_all

clean:
	rm -rf $(VENV) state/autotrader.sqlite3* state/cache
