# medallion — the README's two commands are `make dev` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DAYS ?= 7
ORDERS_PER_DAY ?= 400
SEED ?= 42
PORT ?= 3000
# The sample days end yesterday (UTC) unless END is given.
END ?= $(shell $(PYTHON) -c "import datetime as d; print(d.datetime.now(d.timezone.utc).date() - d.timedelta(days=1))")
START := $(shell $(PYTHON) -c "import datetime as d; print(d.date.fromisoformat('$(END)') - d.timedelta(days=$(DAYS) - 1))")

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export MEDALLION_LANDING_ROOT ?= $(CURDIR)/landing
export MEDALLION_LAKEHOUSE_ROOT ?= $(CURDIR)/.lakehouse
# The daily partitions start at the earliest day that landed (or the first sample day): set it to go further back.
export MEDALLION_START_DATE ?= $(shell $(PYTHON) -c "import pathlib; print(min([p.name[5:] for p in pathlib.Path('$(MEDALLION_LANDING_ROOT)').glob('*/date=????-??-??')] + ['$(START)']))")

.PHONY: install dev demo test lint sample-data materialize summary dagster-home java postgres lock clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install the pinned set

sample-data: install  ## write the sample days $(START)..$(END) to $(MEDALLION_LANDING_ROOT) (existing days are kept)
	$(BIN)/python -m medallion_assets.sample_data --days $(DAYS) --end $(END) --orders-per-day $(ORDERS_PER_DAY) \
		--seed $(SEED) --landing $(MEDALLION_LANDING_ROOT)

dagster-home:
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

materialize: install dagster-home  ## build every table for all sample days in one run (the sensors then skip them)
	$(BIN)/medallion run --from $(START) --to $(END) || [ $$? -eq 3 ]  # 3: days refused, each printed; go on

summary: install  ## print rows, quarantined rows and Delta version per table
	$(BIN)/medallion status

dev: sample-data materialize  ## set up everything, then serve the Dagster UI on 127.0.0.1:$(PORT) (automation on; Ctrl-C stops)
	MEDALLION_AUTOMATION=on $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

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

clean:  ## forget what was built: the lakehouse and Dagster's local state (landing files are kept)
	rm -rf .lakehouse .dagster_home .pytest_cache

.PHONY: bench
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,bench]'
	touch $@

bench: $(VENV)/.bench-installed java postgres  ## every benchmark scenario in one run (about 30 min; not in `make test`); BENCH_ARGS=--quick
	$(BIN)/python -m bench.run $(BENCH_ARGS)
