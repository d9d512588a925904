# The two commands: `make run` (a whole export on local defaults) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
INFRA_VENV := .venv-infra
PY := $(VENV)/bin/python
PORT ?= 7071

.PHONY: run test test-app test-infra bench sandbox devhost deps browser clean

deps: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(INFRA_VENV)/.installed: requirements-infra.txt
	test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## run: a sample Customer Insights export to the Omnisend sandbox through the dev host, with progress.
run: deps
	$(PY) -m tools.demo --port $(PORT)

## test: the whole suite; Azurite and the sandbox are started and stopped by the tests.
test: test-app test-infra

test-app: deps browser
	$(PY) -m pytest tests --ignore=tests/infra

## browser: a Chromium for the console's browser tests (tools/browser.py finds it by path; Playwright's own
## download does not work everywhere). None found: Debian's `chromium` is installed when running as root.
browser: $(VENV)/.installed
	@$(PY) -m tools.browser || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian's chromium package for the console's browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null && $(PY) -m tools.browser; \
	  else \
	    echo "make test: no Chromium found, and this is not a root shell with apt-get to install one (see above)" >&2; exit 1; \
	  fi; }

test-infra: $(INFRA_VENV)/.installed
	$(INFRA_VENV)/bin/python -m pytest tests/infra

## bench: the benchmark scripts (figures quoted in README's performance section).
bench: deps
	$(PY) -m bench.ingest
	$(PY) -m bench.throughput
	$(PY) -m bench.sync_state
	$(PY) -m bench.sync

sandbox: deps
	$(PY) -m tools.omnisend_sandbox --port 8765

devhost: deps
	$(PY) -m tools.devhost --port $(PORT)

clean:
	rm -rf .azurite .pytest_cache .hypothesis
