# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint lint-js bench clean chromium schema docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Browser tests drive Debian's chromium; install it when missing and apt-get is usable.
chromium:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# From the npm registry into the venv, in one install (a second would prune the first): the
# dashboard's charts (uPlot, which the collector serves from there; docs/dashboard.md), the
# accessibility check of its tests (axe-core) and the snippet's lint (ESLint).
JS_PACKAGES := uplot@1.6.32 axe-core@4.14.1 eslint@9
JS_STAMP := $(VENV)/js/.installed
$(JS_STAMP): $(STAMP) Makefile
	@if ! command -v npm >/dev/null; then echo "npm not found: the dashboard shows tables without charts"; exit 0; fi; \
	npm install --silent --no-save --no-audit --no-fund --prefix $(VENV)/js $(JS_PACKAGES) && touch $@

demo: $(STAMP) $(JS_STAMP)
	$(BIN)/chainlens demo

# Every test, on two cores; a module's tests stay in one process (its store is opened once).
test: $(STAMP) $(JS_STAMP) chromium lint
	$(BIN)/pytest -n 2 --dist loadfile

# The fast loop: lint, then the tests that start no `chainlens serve` process and no browser.
check: $(STAMP) $(JS_STAMP) lint
	$(BIN)/pytest -q -m "not slow and not browser" -p no:cacheprovider -n 2 --dist loadfile

lint: $(STAMP) lint-js
	$(BIN)/ruff check chainlens collector ingestion sdk_js tests $(wildcard bench)
	$(BIN)/mypy chainlens collector ingestion sdk_js
	$(BIN)/lint-imports --no-cache

# The snippet's source is linted with ESLint (from the npm registry, kept under .venv/js).
ESLINT := $(VENV)/js/node_modules/.bin/eslint
lint-js: $(STAMP) $(JS_STAMP)
	@if ! command -v npm >/dev/null; then echo "npm not found: skipping the JavaScript lint"; exit 0; fi; \
	cd sdk_js && ../$(ESLINT) -c eslint.config.mjs chainlens.js shopify.js risk.js

# ingestion/schema/current.sql: the tables as a store migrated from nothing has them.
schema: $(STAMP)
	$(BIN)/python -m ingestion.store > ingestion/schema/current.sql.new
	mv ingestion/schema/current.sql.new ingestion/schema/current.sql

# docs/queries.md's last part: the figures' own queries, from ingestion/queries/.
docs: $(STAMP)
	$(BIN)/python -c 'import pathlib, ingestion.figures as f; p = pathlib.Path("docs/queries.md"); \
		s = p.read_text(); p.write_text(s[:s.index(f.GENERATED)] if f.GENERATED in s else s + "\n"); \
		p.write_text(p.read_text() + f.markdown())'

bench: $(STAMP)
	$(BIN)/python bench/accept.py
	$(BIN)/python bench/collector.py
	$(BIN)/python bench/rollup.py

clean:
	rm -rf $(VENV) data
