# Tollgate — every set-up step lives here, so a fresh clone needs only Python 3.11 (+ Java 17/Maven).
#   make run    set up, start the whole platform on its embedded defaults, print how to call it
#   make test   set up, start the servers the suite needs (own ports/names), run lint, types, tests
#   make stop   stop what `make run` started (by PID)

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
LOCK_HASH := $(shell cat requirements.lock requirements-nodeps.txt pyproject.toml | sha256sum | cut -c1-16)
VENV_STAMP := $(VENV)/.installed-$(LOCK_HASH)
PROTO_FILES := $(shell find proto -name '*.proto')
NODE_DIR := tests/node
NODE_HASH := $(shell cat $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json | sha256sum | cut -c1-16)
NODE_STAMP := $(NODE_DIR)/node_modules/.installed-$(NODE_HASH)
PROTO_STAMP := tollgate/.generated

export PYTHONPATH := $(CURDIR)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run stop status test lint typecheck pytest migrate proto venv assets node-deps bench clean lock help
.DEFAULT_GOAL := help

help:
	@echo "make run | make test | make stop | make bench | make lint | make typecheck | make proto | make lock | make clean"

$(VENV_STAMP): requirements.lock requirements-nodeps.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip -q
	@$(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) pip sync -q --python $(PY) requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -r requirements-nodeps.txt
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(VENV_STAMP)

$(PROTO_STAMP): $(VENV_STAMP) $(PROTO_FILES) infra/gen_proto.py
	$(PY) infra/gen_proto.py
	@touch $@

proto: $(PROTO_STAMP)

# The official Node `openai` SDK, for the one end-to-end test that drives the platform from Node.
$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 20+) is needed for the Node SDK test (tests/node)" >&2; exit 1; }
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --ignore-scripts
	@touch $@

node-deps: $(NODE_STAMP)

# Downloads and one-time conversions, cached outside the run folder (~/.cache/tollgate):
# Kafka jars from Maven Central, the Triton server layout, SmolLM2 GGUF -> safetensors.
assets: venv
	$(PY) -m infra.stack.assets

run: proto assets
	$(PY) -m infra.stack up

stop: venv
	$(PY) -m infra.stack stop

status: venv
	$(PY) -m infra.stack status

# Against already-running databases named by the services' settings (make run does this itself).
migrate: proto
	$(PY) -m services.billing migrate
	$(PY) -m services.catalog migrate
	$(PY) -m services.metering migrate

lint: venv
	$(VENV)/bin/ruff check services infra tests bench

typecheck: proto
	$(VENV)/bin/mypy services infra bench

pytest: proto assets node-deps
	$(PY) -m pytest $(PYTEST_ARGS)

test: lint typecheck pytest

# A benchmark, not a test: platform vs the zero-delay upstream, edge+router pinned to one core.
bench: proto assets
	$(PY) -m bench $(BENCH_ARGS)

# Re-resolve pinned versions after editing pyproject.toml dependencies.
lock: venv
	$(UV) pip compile pyproject.toml --extra stack --extra dev --python-version 3.11 -o requirements.lock

clean:
	rm -rf tollgate $(VENV) .mypy_cache .ruff_cache $(NODE_DIR)/node_modules
