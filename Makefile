# Telehealth: `make run` serves the demo on http://127.0.0.1:5000, `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
FLASK := $(VENV)/bin/flask --app wsgi

.PHONY: run serve test check lint security bench-matching translations translations-update translations-check clean

$(VENV)/bin/python:
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $(VENV)/.runtime $@

# Compiled catalogs (.mo) are built here, never committed.
translations: $(VENV)/.runtime
	$(FLASK) translate compile

run: $(VENV)/.runtime translations
	$(FLASK) db upgrade
	$(FLASK) seed-demo --if-empty
	$(FLASK) run --host 127.0.0.1 --port 5000

test: $(VENV)/.dev translations
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check telehealth tests bench

# After merging new strings: `make translations-update`, fill in the new entries, then
# `make translations-check` (the test suite fails on any missing, empty or fuzzy entry).
translations-update: $(VENV)/.runtime
	$(FLASK) translate update

translations-check: $(VENV)/.runtime
	$(FLASK) translate check
# No high-severity finding allowed (tests/security/test_static_analysis.py runs the same).
security: $(VENV)/.dev
	$(VENV)/bin/bandit -q -r telehealth --severity-level high

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
	find translations -name '*.mo' -delete

bench-matching: $(VENV)/.dev
	$(PY) bench/matching.py $(if $(PG),--postgres $(PG))

# CI runs this before the tests: style, types, security findings and the layer contract
# (.importlinter). mypy reads its settings (warn_unused_ignores, ...) from pyproject.toml.
check: $(VENV)/.dev
	$(VENV)/bin/ruff check telehealth tests bench
	$(VENV)/bin/mypy telehealth
	$(VENV)/bin/bandit -q -r telehealth --severity-level high
	$(VENV)/bin/lint-imports

# The production server of the README (one gunicorn worker, threads for Flask-SocketIO's
# threading mode) against the default database; TELEHEALTH_THREADS sets threads and pool.
THREADS ?= $(or $(TELEHEALTH_THREADS),32)
serve: $(VENV)/.runtime translations
	$(FLASK) db upgrade
	$(FLASK) seed-demo --if-empty
	TELEHEALTH_THREADS=$(THREADS) $(VENV)/bin/gunicorn -w 1 --threads $(THREADS) -b 127.0.0.1:5000 wsgi:app
