# Worker Monitor — the two commands: `make run` and `make test`. Each does its own set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := run

# uv from PATH, else a private copy installed with pip into .tools (no download from outside PyPI).
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
PROTOS := $(shell find proto -name '*.proto')
STUBS := libs/proto/src/workermon/__init__.py
DEMO ?= 1

.PHONY: run test proto lint fmt bench bench-check soak clean setup api-types deploy-check

.tools/bin/uv:
	@command -v python3 >/dev/null || { echo "Python 3.11+ is required"; exit 1; }
	python3 -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

.venv/.synced: uv.lock pyproject.toml $(wildcard */pyproject.toml */*/pyproject.toml) | $(UV)
	mkdir -p libs/proto/src
	$(UV) sync --all-packages --frozen
	touch $@

$(STUBS): $(PROTOS) scripts/gen_protos.py .venv/.synced
	$(UV) run --frozen python scripts/gen_protos.py

setup: .venv/.synced $(STUBS)

proto: .venv/.synced
	$(UV) run --frozen python scripts/gen_protos.py

# The admin UI's API types from the gateway's OpenAPI document: admin/openapi.json, admin/src/api/schema.gen.ts.
api-types: setup
	UV=$(UV) admin/scripts/api-types.sh

# The admin UI (admin/dist, served by the gateway at /), built from the lock file when its sources change.
admin/dist/index.html: admin/package-lock.json $(shell find admin/src -type f) admin/index.html admin/vite.config.ts
	@command -v npm >/dev/null || { echo "Node.js 20+ with npm is required to build the admin UI"; exit 1; }
	npm ci --prefix admin --no-audit --no-fund && npm --prefix admin run build

# The demo runs one Node worker when Node is installed (the SDK is built for it); without Node it goes on without.
run: setup admin/dist/index.html $(if $(shell command -v npm 2>/dev/null),sdk/node/dist/.built)
	$(UV) run --frozen workermon migrate
	$(UV) run --frozen workermon up $(if $(filter 0,$(DEMO)),--no-demo,--demo)

# The Node SDK (sdk/node): installed exactly from its lock (again when it changes), then built: stubs generated
# from proto/ with the venv's protoc, the package compiled to dist/, the example worker to dist-example/.
sdk/node/node_modules/.installed: sdk/node/package-lock.json sdk/node/package.json
	@command -v npm >/dev/null || { echo "Node.js 20+ with npm is required for the Node SDK"; exit 1; }
	npm ci --prefix sdk/node --no-audit --no-fund
	touch $@

NODE_SDK_SOURCES := $(shell find sdk/node/src examples/node-worker/src -name '*.ts' -not -path '*/gen/*' 2>/dev/null)
sdk/node/dist/.built: sdk/node/node_modules/.installed $(PROTOS) $(NODE_SDK_SOURCES) $(wildcard sdk/node/tsconfig*.json) sdk/node/scripts/gen-protos.mjs .venv/.synced
	npm --prefix sdk/node run build
	touch $@

# Node BullMQ for the cross-language queue tests, installed exactly from the lock (again when it changes).
tests/node/node_modules/.installed: tests/node/package-lock.json tests/node/package.json
	@command -v npm >/dev/null || { echo "Node.js 20+ with npm is required for the tests"; exit 1; }
	npm ci --prefix tests/node --no-audit --no-fund
	touch $@

# The Prometheus config and alert rules of deploy/, and the rules' unit tests, with promtool.
deploy-check:
	@command -v promtool >/dev/null || { echo "promtool is required for the alert rules' tests (deploy/prometheus): apt-get install prometheus, or put promtool from a Prometheus release on the PATH"; exit 1; }
	promtool check config deploy/prometheus/prometheus.yml
	promtool test rules deploy/prometheus/alerts_test.yml

test: setup tests/node/node_modules/.installed sdk/node/node_modules/.installed admin/dist/index.html deploy-check
	UV=$(UV) admin/scripts/api-types.sh --check
	npm --prefix admin test
	npm --prefix sdk/node test
	$(UV) run --frozen pytest

lint: setup
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/redis-url/src libs/core/src libs/queues/src services/heartbeat/src services/collector/src services/monitor-api/src services/incidents/src gateway/src sdk/python/src cli/src bench examples
	$(UV) run --frozen mypy scripts libs/proto/hatch_build.py deploy/k8s/base/wait_for_migrations.py deploy/docker/healthcheck.py deploy/compose/check_compose.py
	$(UV) run --frozen python deploy/compose/check_compose.py
	$(UV) run --frozen buf lint
	$(UV) run --frozen python scripts/buf_breaking.py
	$(UV) run --frozen python scripts/validate_k8s.py
	$(UV) run --frozen hadolint deploy/docker/Dockerfile

fmt: setup
	$(UV) run --frozen ruff check --fix .
	$(UV) run --frozen ruff format .

bench: setup
	$(UV) run --frozen python -m bench.heartbeat
	$(UV) run --frozen python -m bench.collector
	$(UV) run --frozen python -m bench.monitor
	$(UV) run --frozen python -m bench.gateway

# 30 minutes of steady load on the suite in separate processes, on PostgreSQL (DATABASE_URL): is any
# process's memory growing? Not part of test or bench (bench/README.md, "Soak test").
soak: setup
	$(UV) run --frozen python -m bench.soak

# The last run's ratios (build/bench) against bench/baselines.json; fails on one worse than allowed (bench/check.py).
bench-check: setup
	$(UV) run --frozen python -m bench.check

clean:
	rm -rf .venv .tools build libs/proto/src/workermon .pytest_cache .mypy_cache .ruff_cache
	rm -rf sdk/node/dist sdk/node/dist-test sdk/node/dist-example sdk/node/src/gen
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
