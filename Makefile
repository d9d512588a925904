# The two commands: `make run` (a whole export on local defaults) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
INFRA_VENV := .venv-infra
PY := $(VENV)/bin/python
PORT ?= 7071

.PHONY: run test test-app test-infra bench sandbox devhost deps clean

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

test-app: deps
	$(PY) -m pytest tests --ignore=tests/infra

test-infra: $(INFRA_VENV)/.installed
	$(INFRA_VENV)/bin/python -m pytest tests/infra

## bench: the benchmark scripts (figures quoted in README's performance section).
bench: deps
	$(PY) -m bench.ingest
	$(PY) -m bench.throughput
	$(PY) -m bench.sync_state

sandbox: deps
	$(PY) -m tools.omnisend_sandbox --port 8765

devhost: deps
	$(PY) -m tools.devhost --port $(PORT)

clean:
	rm -rf .azurite .pytest_cache .hypothesis
