# Orders — every command a developer or CI runs. `make help` lists them.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST := $(PY) -m pytest

export PYTHONPATH := $(CURDIR)

.DEFAULT_GOAL := help
.PHONY: help install dev infra test test-unit test-integration test-e2e test-faults test-containers lint format \
        fetch-kafka migrate schemas lock clean floor up down logs ps image-wheels wheelhouse standins kafka-sums

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed (found %s)" % sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.txt
	@touch $@

install: $(STAMP) ## Create .venv with the pinned dependencies (only when they changed)

fetch-kafka: $(STAMP) ## Resolve Apache Kafka's jars with Maven into .state/ (once), SHA-256 checked
	$(PY) -m scripts.stack fetch

kafka-sums: $(STAMP) ## After changing scripts/stack/kafka/pom.xml: record the jars' SHA-256 sums
	KAFKA_JARS_RECORD=1 $(PY) -m scripts.stack fetch
	git diff --stat scripts/stack/kafka/jars.sha256

dev: $(STAMP) ## Run PostgreSQL, Kafka, api, relay and consumer on loopback; Ctrl-C stops all
	$(PY) -m scripts.stack dev

# --- Authentication (README "Authentication") -----------------------------------------
CUSTOMER ?=
ROLE     ?= customer
TTL      ?= 86400
.PHONY: token
token: $(STAMP) ## Print a token for make dev's API (CUSTOMER=<uuid>, ROLE=admin, TTL=<s>); last line
	@$(PY) -m scripts.stack.tokens --customer "$(CUSTOMER)" --role "$(ROLE)" --ttl "$(TTL)"

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

test-containers: $(STAMP) ## compose.yaml on a Docker engine: make up, restarts, make down
	$(PYTEST) tests/containers/test_stack_in_docker.py

standins: $(STAMP) ## Build local stand-ins for postgres, apache/kafka, python images (no registry)
	$(PY) -m tests.containers.standins.build

# What security costs Kafka's producers: the same messages to a broker without security,
# with SASL SCRAM + ACLs, and with SASL_SSL (bench/sasl_cost.py; its own brokers, ~1 min).
SASL_BENCH_ARGS ?= --messages 100000 --runs 3

.PHONY: bench
bench: $(STAMP) ## Benchmark: sustained capacity, CPU per order, API and relay drains vs pgbench / raw producer; then what SASL and TLS cost
	$(PY) -m bench $(BENCH_ARGS)
	$(PY) -m bench.sasl_cost $(SASL_BENCH_ARGS)

floor: $(STAMP) ## What PostgreSQL, Kafka, Litestar and psycopg cost with none of our code, beside the bench's targets (~6 min)
	$(PY) -m bench.floor $(FLOOR_ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP) ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

schemas: $(STAMP) ## Regenerate the events' JSON Schemas in docs/events/ from the code
	$(PY) -m app.events.schemas

lock: $(STAMP) ## Re-pin requirements*.txt from pyproject.toml, with hashes (no index URLs recorded)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml -o requirements.txt --python-version 3.11 --no-header --quiet --generate-hashes
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev -o requirements-dev.txt --python-version 3.11 --no-header --quiet --generate-hashes

clean: ## Remove local state (databases, Kafka data, cached jars) and caches
	rm -rf .state wheelhouse .mypy_cache .ruff_cache .pytest_cache .hypothesis

# --- Containers (compose.yaml, Containerfile; docs/containers.md) ----------------------
# `docker compose` (v2) where it is installed, else the older `docker-compose`.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

wheelhouse: $(STAMP) ## Download requirements.txt's wheels (hash-checked) for the image build
	$(PY) -m scripts.wheelhouse

# UP_SERVICES: start only these services (and what they depend on); empty means all.
UP_SERVICES ?=

up: wheelhouse ## Build the image and start everything in containers (Docker); waits for the API
	$(PY) -m scripts.stack.tokens --init  # the local signing key (.state/auth/), as make dev
	CURSOR_SECRET="$${CURSOR_SECRET:-$$(cat .state/auth/cursor-secret)}" $(COMPOSE) up -d --build $(UP_SERVICES)
	@port() { $(COMPOSE) port "$$1" "$$2" 2>/dev/null | head -n1 | sed 's/.*://'; }; \
	api_port=$$(port api 8080); \
	printf 'waiting for the API to report healthy'; \
	status=starting; \
	for i in $$(seq 60); do \
	  if $(COMPOSE) ps api | grep -q '(healthy)'; then status=healthy; break; fi; \
	  printf .; sleep 2; \
	done; echo " $$status"; \
	echo; \
	echo "  API            http://localhost:$$api_port   (docs: http://localhost:$$api_port/schema/docs)"; \
	ui_port=$$(port kafka-ui 8080); \
	echo "  Kafka UI       $${ui_port:+http://localhost:$$ui_port}$${ui_port:-not started}"; \
	echo "  Kafka          localhost:$$(port kafka 19092) from this machine, kafka:9092 between containers"; \
	echo "  PostgreSQL     localhost:$$(port postgres 5432)"; \
	echo; \
	echo "  make logs · make ps · make down  (docs/containers.md)"; \
	[ "$$status" = healthy ] || { echo "the API is not healthy yet: see 'make logs'"; exit 1; }

down: ## Stop and remove the containers (data volumes are kept)
	$(COMPOSE) down --remove-orphans

logs: ## Follow the containers' logs (Ctrl-C stops following)
	$(COMPOSE) logs -f --tail=200

ps: ## The containers, their state and health (one-shot jobs included)
	$(COMPOSE) ps --all

image-wheels: $(STAMP) ## Ask the package index: has every pin a wheel for the image (amd64, arm64)?
	@for arch in x86_64 aarch64; do \
	  platforms="--platform manylinux2014_$$arch"; \
	  for v in 17 24 27 28 31 34 36; do platforms="$$platforms --platform manylinux_2_$${v}_$$arch"; done; \
	  $(PY) -m pip install --quiet --dry-run --no-deps --only-binary=:all: --ignore-installed \
	    --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none $$platforms \
	    --target $(CURDIR)/.state/image-wheels -r requirements.txt \
	    && echo "linux/$$arch: a wheel for every pin in requirements.txt" || exit 1; \
	done
