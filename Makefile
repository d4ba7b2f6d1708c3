# QuantumWorks Realtime: `make run` (demo) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The role scripts/ensure_services.sh creates with a password, so TCP logins
# work under a fresh cluster's scram pg_hba too (a test credential, not a secret).
TEST_DATABASE_URL ?= postgres://qw:qw-test-only@127.0.0.1:5432/qw
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
# Two pytest-xdist workers, each with its own test database (test_qw_gw0, …) and Redis
# prefix (settings_test); most of the suite waits on servers, browsers and timers, so two
# workers overlap the waits. A test module stays on one worker (its module fixtures start
# once); modules go out in collection order, which puts those with slow tests first (conftest.py).
PYTEST_ARGS ?= -n 2 --dist loadscope --no-loadscope-reorder
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench bench-history chaos services cluster

# Two stamps: `make run` needs the runtime only (requirements.txt); everything
# else also needs the test and lint tools (requirements-dev.txt).
$(BIN)/.installed-runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(BIN)/.installed: $(BIN)/.installed-runtime requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# The demo on the embedded defaults: SQLite file, in-memory layer, one process.
run: $(BIN)/.installed-runtime
	DEBUG=1 $(BIN)/python manage.py migrate --noinput -v0
	DEBUG=1 $(BIN)/python manage.py seed_demo
	DEBUG=1 $(BIN)/python -m servers --host $(HOST) --port $(PORT) --access-log

services:
	./scripts/ensure_services.sh

node_modules/.installed: package.json package-lock.json
	./scripts/ensure_services.sh node
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clients/react/node_modules/.installed: clients/react/package.json clients/react/package-lock.json
	./scripts/ensure_services.sh node
	cd clients/react && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# lint covers the JS too; the node tests run before pytest: CI reads pytest's summary, the last line.
# pytest also runs the React bindings end to end (tests/test_react_client.py) and checks every
# frame the suite receives against docs/asyncapi.yaml.
test: $(BIN)/.installed lint services node_modules/.installed clients/react/node_modules/.installed
	node --test tests/js/
	cd clients/react && node --test test/
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)

# Not part of the suite: capacity and speed of one server process (docs/performance.md), and
# exactly-once under kills. BENCH_ARGS e.g. "--only w2 --w2-rates 1000 --server daphne".
BENCH_DB ?= qw_bench
BENCH_PREFIX ?= $(or $(QW_CHANNEL_PREFIX),qwbench)
BENCH_ARGS ?=
bench: $(BIN)/.installed services bench/node_modules/.package-lock.json
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	$(BIN)/python bench/run.py --db $(BENCH_DB) --prefix $(BENCH_PREFIX) $(BENCH_ARGS)

bench/node_modules/.package-lock.json: bench/package.json bench/package-lock.json
	cd bench && npm ci --no-audit --no-fund

# Not part of the suite: empty vs ~1,000,000 messages of history (docs/history-performance.md).
# Loads its own databases qw_h8_bench and qw_h8_bench_empty; client on core 0, server on core 1.
bench-history: $(BIN)/.installed services
	taskset -c 0 $(BIN)/python bench/history.py --db qw_h8_bench

# 100,000 messages through nginx over two processes; SIGKILL, Redis, PostgreSQL and rolling
# restarts on private instances it starts itself. Shorter: make chaos CHAOS_ARGS="--messages 5000"
CHAOS_ARGS ?=
chaos: $(BIN)/.installed services
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

# mypy (config in pyproject.toml) checks these files, all clean; add a file once it is.
MYPY_FILES := \
	notifications/events.py notifications/models.py notifications/selectors.py \
	notifications/services.py notifications/signals.py \
	tasks/events.py tasks/models.py tasks/selectors.py tasks/services.py tasks/signals.py \
	realtime/models.py realtime/selectors.py chat/state.py chat/selectors.py \
	realtime/registry.py realtime/domain_errors.py \
	realtime/protocol.py realtime/redis_client.py presence/store.py chat/events.py \
	realtime/frames.py realtime/publisher.py realtime/outbox.py realtime/transport.py \
	realtime/heartbeats.py realtime/faults.py servers/request_head.py \
	realtime/batching.py realtime/redis_connection.py \
	chat/attachments.py chat/mentions.py chat/edits.py testkit/frames.py \
	notifications/offline.py notifications/preferences.py notifications/webpush.py \
	notifications/mail.py notifications/push_subscriptions.py notifications/worker.py \
	notifications/subjects.py

# nginx (Debian's, run as our own child with a generated config) in front of N processes.
N ?= 2
CLUSTER_PORT ?= 8080
cluster: $(BIN)/.installed services
	$(BIN)/python deploy/cluster.py --processes $(N) --port $(CLUSTER_PORT)

lint: $(BIN)/.installed node_modules/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(MYPY_FILES)
	npx --no-install biome lint realtime/static notifications/static demo/static tests/js scripts clients/react
	npx --no-install biome format realtime/static notifications/static demo/static tests/js scripts clients/react
	node scripts/validate-asyncapi.mjs docs/asyncapi.yaml
	$(BIN)/lint-imports
