# Two commands do all the setup on a fresh machine with Python 3.11+ and make:
#   make test   create .venv, install with test extras, run ruff, mypy and pytest
#   make demo   create .venv and run the local collector, the example app and simulated users
#   make pythons   the fast suite on every other Python the package supports (3.11 to 3.13)
#   make reliability   the long reliability and security suite; rewrites docs/reliability.md
#   make bench   ours against bare apps and peer middlewares; rewrites docs/benchmarks.md
#   make floor   the export tests against the lowest versions pyproject.toml allows
#   make backends   only the suite against a real Phoenix server (tests/backends)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
# The demo needs the example app and the collector, not the test tools.
DEMO_STAMP := $(VENV)/.installed-demo
# The real Phoenix server the backend suite starts lives in its own environment:
# it is large and pins its own OpenTelemetry, FastAPI and Starlette.
PHOENIX_VENV := .venv-phoenix

.PHONY: constraints test demo pythons reliability bench floor lint typecheck pytest backends phoenix browser redis clean

$(BIN)/python:
	@echo "Creating $(VENV) with $(PYTHON) and upgrading its pip (a few seconds)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	@echo "Installing neatlogs-web with its [test] extra into $(VENV) (about 30 s and 400 MB on a first run)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The page tests drive Debian's chromium; install it when missing (needs root or sudo).
browser:
	@test -x /usr/bin/chromium || { \
		echo "Installing Debian's chromium with apt-get, for the page tests (a minute or so)"; \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends chromium; }

# The Celery tests start Debian's redis-server as their broker, each on a free port of
# its own; install it when missing (needs root or sudo). The package would also start a
# system Redis on port 6379 and enable it at boot: a policy-rc.d (unless the machine has
# one already) forbids the start during the install, and systemd's unit is disabled (and
# stopped, where systemd runs) after it. Nothing is left running or starting at boot.
REDIS_SERVER := /usr/bin/redis-server
POLICY_RC_D := /usr/sbin/policy-rc.d

redis:
	@test -x $(REDIS_SERVER) || { \
		echo "Installing Debian's redis-server with apt-get, for the Celery tests (its system service left disabled)"; \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		policy=$(POLICY_RC_D); ours=; \
		if [ ! -e $$policy ]; then \
			printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$policy >/dev/null && \
			$$SUDO chmod 755 $$policy && ours=1; \
		fi; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends redis-server; \
		status=$$?; \
		if [ -n "$$ours" ]; then $$SUDO rm -f $$policy; fi; \
		if command -v systemctl >/dev/null; then \
			$$SUDO systemctl disable --now redis-server.service >/dev/null 2>&1 || \
				$$SUDO systemctl disable redis-server.service >/dev/null 2>&1 || true; \
		elif command -v update-rc.d >/dev/null; then \
			$$SUDO update-rc.d redis-server disable >/dev/null 2>&1 || true; \
		fi; \
		exit $$status; }

# Installs arize-phoenix into $(PHOENIX_VENV) once (a few hundred MB; about a
# minute or two); the backend tests would do it themselves otherwise. The stamp is the
# one tests/backends/phoenix_server.py leaves for its pinned version.
PHOENIX_VERSION := $(shell sed -n 's/^PHOENIX_VERSION = "\(.*\)"/\1/p' tests/backends/phoenix_server.py)

phoenix: $(STAMP)
	@test -e $(PHOENIX_VENV)/.installed-arize-phoenix-$(PHOENIX_VERSION) || \
		echo "Installing arize-phoenix $(PHOENIX_VERSION) into $(PHOENIX_VENV), for the backend tests (about a minute and 850 MB)"
	$(BIN)/python -m tests.backends.phoenix_server install

# pytest-xdist workers, each test module on one of them (tests/conftest.py). The
# suites mostly wait on servers and subprocesses (about half a core each), so three
# keep a 2-core machine busy.
WORKERS := -n 3

pytest: $(STAMP) browser redis phoenix
	$(BIN)/pytest -q $(WORKERS)

backends: $(STAMP) phoenix
	$(BIN)/pytest -q tests/backends

test: lint typecheck pytest floor pythons

$(DEMO_STAMP): $(BIN)/python pyproject.toml constraints.txt
	@echo "Installing neatlogs-web with its [examples,collector] extras into $(VENV) (under a minute)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[examples,collector]"
	touch $(DEMO_STAMP)

# The local collector's port: `make demo PORT=4400` when 4318 is taken. A PORT in the
# environment (set for some other server) is not taken for it; only the command line's.
PORT = 4318

demo: $(DEMO_STAMP)
	$(BIN)/neatlogs-web demo --port $(PORT)

# Minutes, not seconds: 500 clients per server, export faults, 10,000 fuzz examples per target.
reliability: $(STAMP)
	$(BIN)/python -m tests.reliability

$(BENCH_STAMP): $(BIN)/python pyproject.toml constraints.txt
	@echo "Installing neatlogs-web with its [test,bench] extras into $(VENV) (under a minute)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,bench]"
	touch $(BENCH_STAMP)

# A few minutes; the first run also builds a 1,000,000-span collector store in .bench-cache/.
bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

# Export leans on the SDK's batch processor and the OTLP exporter: prove the floors.
FLOOR := $(VENV)/floor
FLOOR_PINS := opentelemetry-api==1.35.0 opentelemetry-sdk==1.35.0 \
	opentelemetry-exporter-otlp-proto-http==1.35.0 opentelemetry-proto==1.35.0 requests==2.28.0

$(FLOOR)/.installed: pyproject.toml
	@echo "Installing the lowest OpenTelemetry and requests pyproject.toml allows into $(FLOOR) (about 20 s)"
	$(PYTHON) -m venv $(FLOOR)
	$(FLOOR)/bin/python -m pip install --quiet -e . $(FLOOR_PINS) \
		pytest httpx uvicorn starlette
	touch $@

floor: $(FLOOR)/.installed
	$(FLOOR)/bin/pytest -q -p no:cacheprovider tests/test_export.py tests/test_sdk.py

# Every Python the package supports (requires-python >= 3.11) runs the fast suite:
# $(PYTHON) in .venv above, each other one in its own .venv-X.Y. .ci/find-python finds
# pythonX.Y on PATH, else in pyenv or uv, and says what is missing when none has it.
SUPPORTED_PYTHONS := 3.11 3.12 3.13
MAIN_PYTHON := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
EXTRA_PYTHONS ?= $(filter-out $(MAIN_PYTHON),$(SUPPORTED_PYTHONS))
# The fast suite: the core, export, the collector's receiver and API, and the
# framework integrations, on real servers: the tests no tier marks (the markers in
# pyproject.toml). The page tests (a browser), Celery's worker (Redis), the
# Phoenix and reliability suites and the slow runs of server processes are the
# main run's.
# The browser tier's modules import Playwright, which these environments leave out:
# they are not collected at all.
FAST_TESTS := -m "not browser and not redis and not backends and not reliability and not slow" \
	--ignore=tests/browser

# Only what the fast suite needs (the [fast-tests] extra: no linters, no browser
# driver), in an environment made anew, so it holds nothing an older extra brought.
$(VENV)-%/.installed: pyproject.toml constraints.txt
	@interpreter=$$(.ci/find-python $*) || exit 1; \
		echo "Installing neatlogs-web with its [fast-tests] extra into $(VENV)-$* with $$interpreter (about 30 s and 370 MB on a first run)"; \
		$$interpreter -m venv --clear $(VENV)-$* && \
		$(VENV)-$*/bin/python -m pip install --quiet --upgrade pip && \
		$(VENV)-$*/bin/python -m pip install --quiet -c constraints.txt -e ".[fast-tests]"
	touch $@

pythons: $(foreach version,$(EXTRA_PYTHONS),$(VENV)-$(version)/.installed)
	@failed=""; for version in $(EXTRA_PYTHONS); do \
		echo "== the fast suite on Python $$version"; \
		$(VENV)-$$version/bin/pytest -q -p no:cacheprovider $(WORKERS) $(FAST_TESTS) \
			|| failed="$$failed $$version"; \
	done; \
	test -z "$$failed" || { echo "the fast suite failed on Python$$failed"; exit 1; }

# After changing dependencies: the versions the current .venv holds become the constraints.
constraints: $(BENCH_STAMP)
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^neatlogs-web'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) $(VENV)-3.* $(PHOENIX_VENV) .mypy_cache .pytest_cache .ruff_cache .bench-cache
