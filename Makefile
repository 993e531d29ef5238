# medallion — the README's two commands are `make dev` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DAYS ?= 7
ORDERS_PER_DAY ?= 400
SEED ?= 42
START ?= 2024-01-01
END := $(shell $(PYTHON) -c "import datetime as d; print(d.date.fromisoformat('$(START)') + d.timedelta(days=$(DAYS) - 1))")

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export MEDALLION_LANDING_ROOT ?= $(CURDIR)/landing
export MEDALLION_LAKEHOUSE_ROOT ?= $(CURDIR)/.lakehouse

.PHONY: install dev demo test lint sample-data materialize summary dagster-home java postgres lock clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install the pinned set

sample-data: install  ## write $(DAYS) days of sample order files to $(MEDALLION_LANDING_ROOT)
	$(BIN)/python -m medallion_assets.sample_data --days $(DAYS) --orders-per-day $(ORDERS_PER_DAY) \
		--seed $(SEED) --start $(START) --landing $(MEDALLION_LANDING_ROOT) --clean

dagster-home:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

MATERIALIZE := $(BIN)/dagster asset materialize -m medallion_assets.definitions
RANGE := --partition-range $(START)...$(END)

materialize: install dagster-home  ## materialize every table for all sample days (one run per step of the star)
	$(MATERIALIZE) --select bronze/customers $(RANGE)
	$(MATERIALIZE) --select silver/dim_customer,gold/dim_date
	$(MATERIALIZE) --select bronze/orders,silver/orders,gold/daily_sales,gold/fact_orders $(RANGE)
	$(MATERIALIZE) --select gold/customer_ltv

summary: install  ## print rows, quarantined rows and Delta version per table
	$(BIN)/python -m medallion_assets.summary

dev: sample-data materialize  ## set up everything, then serve the Dagster UI on 127.0.0.1:3000 (automation on)
	MEDALLION_AUTOMATION=on $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

demo: sample-data materialize summary  ## everything `make dev` does, headless, then a per-table summary

java:  ## the portability tests run classic JVM Spark next to Sail
	@command -v java >/dev/null || (apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless)

postgres:  ## PostgreSQL's server binaries (initdb, postgres) for `make prod-local` and the production-instance tests
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq postgresql)
	@# PostgreSQL refuses to run as root: as root, it runs as this unprivileged user (the package creates it).
	@[ "$$(id -u)" != 0 ] || id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres

.PHONY: prod-local prod-stop
prod-local: install $(if $(MEDALLION_PG_HOST),,postgres)  ## PostgreSQL, code server, webserver, daemon on 127.0.0.1 (deploy/)
	$(BIN)/python -m deploy.local_prod start

prod-stop:  ## stop what `make prod-local` started, by the pids in .prod/pids.json
	$(BIN)/python -m deploy.local_prod stop

.PHONY: browser
browser:  ## the UI tests drive the Dagster UI in Debian's headless Chromium (never a Playwright download)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install java browser postgres lint  ## install what the tests need and run the whole suite
	$(BIN)/pytest -q

lock: $(BIN)/activate  ## re-resolve the pinned set and rewrite constraints.txt
	$(BIN)/pip install --quiet -e '.[test]'
	( echo "# Lock for a fresh install: make install uses pip install -c constraints.txt. Regenerate with make lock."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^medallion' ) > constraints.txt

clean:
	rm -rf .lakehouse landing .dagster_home .pytest_cache

.PHONY: bench
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	touch $@

bench: $(VENV)/.bench-installed java  ## every benchmark scenario in one run (10-20 min; not in `make test`); BENCH_ARGS=--quick
	$(BIN)/python -m bench.run $(BENCH_ARGS)
