# Huizhen: `make run` serves the app on the embedded default (gunicorn when HUIZHEN_ENV=production);
# `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
PYTEST_ARGS ?=

.PHONY: run serve-production install install-dev ohif db seed test test-sqlite test-pg lint bench clean i18n

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.deps: requirements.txt package-lock.json | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(VENV)/.dev-deps: requirements-dev.txt $(VENV)/.deps
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.deps

install-dev: $(VENV)/.dev-deps

## The OHIF Viewer's prebuilt files: fetched with npm once into OHIF_CACHE (~/.cache/huizhen), then a no-op
ohif: install
	$(BIN)/flask --app run ohif-fetch

db: install
	$(BIN)/flask --app run db upgrade

seed: db
	$(BIN)/flask --app run seed-demo

ifeq ($(strip $(HUIZHEN_ENV)),production)
## HUIZHEN_ENV=production: install, migrate (no demo accounts) and serve with gunicorn
run: serve-production
else
## Install, migrate, seed the demo accounts and serve http://127.0.0.1:5000
run: seed ohif
	$(BIN)/python run.py
endif

## The production server: gunicorn's threaded worker with WebSockets (settings in gunicorn.conf.py)
serve-production: db ohif
	$(BIN)/gunicorn -c gunicorn.conf.py

lint: install-dev
	$(BIN)/ruff check .

## Lint, then the suite on SQLite and on the PostgreSQL of this machine, the two passes side by side
## (engine-agnostic tests in one pass: tests/conftest.py); each pass prints its output when it ends
test: lint
	HZ_SPLIT_PASSES=1 $(MAKE) -j2 --output-sync=target test-sqlite test-pg

test-sqlite: install-dev ohif
	DATABASE_URL= $(BIN)/python -m pytest $(PYTEST_ARGS)

test-pg: install-dev ohif
	DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest -o cache_dir=.pytest_cache_pg $(PYTEST_ARGS)

bench: install-dev
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/realtime.py
	$(BIN)/python bench/viewer.py

clean:
	rm -rf $(VENV) .pytest_cache .pytest_cache_pg .ruff_cache

## Extract the pages' strings (Chinese msgids) and merge them into the translations
i18n: install
	$(BIN)/pybabel extract -F babel.cfg -k _l --no-location -o app/translations/messages.pot app
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching --ignore-obsolete
