# Depot. `make run` and `make test` do all the set-up on a fresh machine (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
export UV_PYTHON_DOWNLOADS := never
HOST ?= 127.0.0.1
PORT ?= 8000
WEB_WORKERS ?= 2
WORKER_CONCURRENCY ?= 2

.PHONY: run test lint fmt install frontend browser web worker beat migrate schema check-services clean

## Install the locked Python dependencies into .venv (uv is bootstrapped with pip if missing).
install: $(BIN)/.synced
$(BIN)/.synced: pyproject.toml uv.lock
	@command -v $(UV) >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --user uv || $(PYTHON) -m pip install --quiet uv
	@$$(command -v uv || echo $(HOME)/.local/bin/uv) sync --frozen --python $(PYTHON)
	@touch $@

## Build the dashboard (frontend/dist), from its lock file.
frontend: frontend/dist/index.html
frontend/dist/index.html: frontend/package-lock.json $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/vite.config.ts
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build

## Headless Chromium for the browser tests (Debian's package).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "The browser tests need Debian's chromium: sudo apt-get install chromium"; exit 1; fi; fi

## Start Depot embedded (SQLite, local files, in-process worker) with a demo workspace.
run: install frontend
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT) --demo

## Everything CI runs: lint, then the whole suite against Postgres, Redis, RabbitMQ and SeaweedFS.
test: install frontend browser lint
	$(BIN)/python scripts/run_tests.py $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/python manage.py graphql_schema --check

fmt: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Services mode: configure with DATABASE_URL, REDIS_URL, S3_* (see docs/operations.md).
web: install frontend
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput -v0
	$(BIN)/uvicorn project.asgi:application --host $(HOST) --port $(PORT) --workers $(WEB_WORKERS) --lifespan off

worker: install
	$(BIN)/celery -A project worker --concurrency $(WORKER_CONCURRENCY) --loglevel INFO

beat: install
	$(BIN)/celery -A project beat --loglevel INFO

migrate: install
	$(BIN)/python manage.py migrate

## Regenerate the committed schema.graphql from the code.
schema: install
	$(BIN)/python manage.py graphql_schema

check-services: install
	$(BIN)/python scripts/check_services.py --rabbitmq

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist var
