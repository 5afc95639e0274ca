# convoyd — `make run` starts the daemon, `make test` runs every check. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The daemon alone (make run) and the daemon plus the dev extra (make test and the checks).
RUN_STAMP := $(VENV)/.run-stamp
STAMP := $(VENV)/.installed-stamp
# setuptools says "Editable installation ... be careful with folders in your working directory"
# on every editable install, boxed in asterisks as if something failed; it is information only.
EDITABLE := PYTHONWARNINGS='ignore:Editable installation'
BUF := tools/node_modules/.bin/buf
NODE_STAMP := tools/node_modules/.installed-stamp
SYSTEMD_STAMP := $(VENV)/.systemd-tools-stamp
NODE_CLIENT_STAMP := clients/node/node_modules/.installed-stamp
CHROMIUM_STAMP := $(VENV)/.chromium-stamp
POSTGRES_STAMP := $(VENV)/.postgres-stamp

.PHONY: run test lint pytest node-test bench soak reliability gen check-gen proto-lint proto-breaking proto-dist fmt clean

run: $(RUN_STAMP)
	$(BIN)/convoyd serve

test: lint pytest node-test

$(RUN_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "convoyd needs Python >= 3.11 ($(PYTHON) is older)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(EDITABLE) $(BIN)/python -m pip install --quiet -e .
	touch $@

$(STAMP): $(RUN_STAMP)
	$(EDITABLE) $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error
	touch $@

$(NODE_CLIENT_STAMP): clients/node/package.json clients/node/package-lock.json
	npm ci --prefix clients/node --no-audit --no-fund --loglevel=error
	touch $@

# systemd-analyze (Debian's systemd package) checks the unit file in tests/e2e/test_systemd.py.
$(SYSTEMD_STAMP): $(STAMP)
	command -v systemd-analyze >/dev/null || (apt-get update && apt-get install -y --no-install-recommends systemd)
	touch $@

# Debian's Chromium for tests/portal/test_portal_browser.py (Playwright drives it by path;
# `playwright install` would download a browser build, which this network cannot).
$(CHROMIUM_STAMP): $(STAMP)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)
	touch $@

# Debian's PostgreSQL server binaries: tests/pgserver.py runs a throwaway server from them for
# the PostgreSQL store's tests and benchmarks (no cluster of the package's own is used).
$(POSTGRES_STAMP): $(STAMP)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update && apt-get install -y --no-install-recommends postgresql)
	touch $@

gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

check-gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py --check

proto-lint: $(NODE_STAMP)
	$(BUF) lint proto

# Compares the contract with the one on branch main (a no-op on main itself, a guard on any
# other branch or on uncommitted changes).
proto-breaking: $(NODE_STAMP)
	@if git rev-parse --verify --quiet main:proto/buf.yaml >/dev/null; then \
		$(BUF) breaking proto --against '.git#branch=main,subdir=proto'; \
	else echo "proto-breaking: branch main has no proto/ yet; nothing to compare"; fi

lint: $(STAMP) check-gen proto-lint proto-breaking
	$(BIN)/ruff check convoyd tests scripts benchmarks examples
	$(BIN)/ruff format --check convoyd tests scripts benchmarks examples
	$(BIN)/mypy

pytest: $(STAMP) $(NODE_STAMP) $(SYSTEMD_STAMP) $(CHROMIUM_STAMP) $(POSTGRES_STAMP)
	$(BIN)/pytest

# The Node.js client's own tests; its integration test starts the real daemon with this venv.
# They print a few hundred lines: one summary line when they pass, all of it when they fail
# (the counts are read from the TAP or the spec reporter's summary, whichever node uses).
node-test: $(STAMP) $(NODE_CLIENT_STAMP)
	@log=$$(mktemp); \
	if CONVOYD_PYTHON=$(abspath $(BIN))/python npm test --silent --prefix clients/node >$$log 2>&1; then \
		echo "node-test: Node.js client tests passed ($$(sed -nE 's/^(# |ℹ )(tests|pass|fail|skipped) ([0-9]+)$$/\3 \2/p' $$log | paste -sd, - | sed 's/,/, /g'))"; \
		rm -f $$log; \
	else status=$$?; cat $$log; rm -f $$log; echo "node-test: Node.js client tests failed"; exit $$status; fi

# The contract for other languages: the .proto files (convoyd/v1/ layout kept) and a
# FileDescriptorSet with every import, for protoc/buf plugins and dynamic clients.
proto-dist: $(NODE_STAMP)
	rm -rf dist/proto dist/convoyd.binpb
	mkdir -p dist/proto/convoyd/v1
	cp proto/convoyd/v1/*.proto dist/proto/convoyd/v1/
	$(BUF) build proto -o dist/convoyd.binpb

# The benchmark of benchmarks/bench.py at full size, SQLite beside PostgreSQL (about ten
# minutes); figures in README.
bench: $(STAMP) $(POSTGRES_STAMP)
	$(BIN)/python benchmarks/bench.py --store both --out benchmarks/results/bench.json

# The soak of benchmarks/soak.py for 10 minutes (make test runs it for one).
soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py --seconds 600

# The figures of the README's reliability section: repeated kill -9, faulty receivers, full
# disk, bad input and the one-minute soak, with their numbers in benchmarks/results/.
reliability: $(STAMP) $(NODE_STAMP) $(POSTGRES_STAMP)
	CONVOYD_FIGURES_DIR=benchmarks/results $(BIN)/pytest -q tests/e2e/test_crash_cycles.py \
		tests/e2e/test_postgres_outage.py tests/e2e/test_cluster.py \
		tests/e2e/test_crash.py tests/delivery/test_faulty_receivers.py \
		tests/e2e/test_disk_full.py tests/fuzz tests/e2e/test_poison.py \
		tests/e2e/test_unauthenticated_memory.py tests/e2e/test_soak.py
	$(BIN)/python benchmarks/bench.py --only isolation --out benchmarks/results/isolation.json
	@cat benchmarks/results/crash.json benchmarks/results/soak.json

fmt: $(STAMP)
	$(BIN)/ruff format convoyd tests scripts benchmarks examples
	$(BIN)/ruff check --fix convoyd tests scripts benchmarks examples

clean:
	rm -rf $(VENV) tools/node_modules clients/node/node_modules dist .pytest_cache .mypy_cache .ruff_cache
