# Orders — every command a developer or CI runs. `make help` lists them.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST := $(PY) -m pytest

export PYTHONPATH := $(CURDIR)

.DEFAULT_GOAL := help
.PHONY: help install dev infra test test-unit test-integration test-e2e test-faults lint format \
        fetch-kafka migrate lock clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed (found %s)" % sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@

install: $(STAMP) ## Create .venv with the pinned dependencies (only when they changed)

fetch-kafka: $(STAMP) ## Resolve Apache Kafka's jars with Maven into .state/ (once)
	$(PY) -m scripts.stack fetch

dev: $(STAMP) ## Run PostgreSQL, Kafka, api, relay and consumer on loopback; Ctrl-C stops all
	$(PY) -m scripts.stack dev

infra: $(STAMP) ## Run only PostgreSQL and Kafka (prints the variables to use them)
	$(PY) -m scripts.stack infra

migrate: $(STAMP) ## Apply migrations to DATABASE_URL / DB_* (alembic upgrade head)
	$(PY) -m alembic upgrade head

test: lint ## Lint, then the whole suite against real PostgreSQL and real Kafka
	$(PYTEST) tests

test-unit: $(STAMP) ## Unit tests only (no I/O)
	$(PYTEST) tests/unit

test-integration: $(STAMP) ## Integration tests (real PostgreSQL)
	$(PYTEST) tests/integration

test-e2e: $(STAMP) ## End-to-end tests (real processes, PostgreSQL and Kafka)
	$(PYTEST) tests/e2e

test-faults: $(STAMP) ## Fault tests alone (kill -9, broker and database restarts)
	$(PYTEST) tests/faults

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP) ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lock: $(STAMP) ## Re-pin requirements*.txt from pyproject.toml (no index URLs recorded)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml -o requirements.txt --python-version 3.11 --no-header --quiet
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev -o requirements-dev.txt --python-version 3.11 --no-header --quiet

clean: ## Remove local state (databases, Kafka data, cached jars) and caches
	rm -rf .state .mypy_cache .ruff_cache .pytest_cache .hypothesis
