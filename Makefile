# Ferry — the commands a developer runs. Everything goes through .venv, created on demand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR := .ferry
COLLECTOR_ADDR ?= 127.0.0.1:4770

.PHONY: install proto test test-fast lint run bench docs dashboards clean deb

install: $(STAMP)

$(STAMP): pyproject.toml client/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ./client -e '.[agent,collector,dev]'
	@touch $(STAMP)

proto: $(STAMP)
	$(PY) proto/generate.py

# pytest-xdist workers, each a process with its own embedded store; a test file stays on one
# worker (module fixtures, order within a file). WORKERS=0 runs every test in this process.
# Three on a 2-core machine: the integration tests mostly wait on real processes (starts,
# timers, acks), so a third worker fills the idle CPU (a full run: 11:43 with two, 9:01 with three)
WORKERS ?= 3
PYTEST := $(PY) -m pytest -q -n $(WORKERS) --dist loadfile

# everything, as CI runs it
test: $(STAMP)
	$(PYTEST)

# the unit tests: no test marked integration (tests/integration, helper processes, builds)
test-fast: $(STAMP)
	$(PYTEST) -m "not integration"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

run: $(STAMP)
	$(PY) -m ferry.collector.devrun --dir $(RUN_DIR) --collector $(COLLECTOR_ADDR)

bench: $(STAMP)
	$(PY) -m bench.run $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) $(RUN_DIR) .pytest_cache .ruff_cache

# the pages of docs/ generated from a declaration in code; tests/ fails when one is stale
docs: $(STAMP)
	$(PY) -m ferry.agent.catalogue > docs/METRICS.md
	$(PY) -m ferry.runtime.configdoc > docs/configuration.md
	$(PY) docs/generate.py

# grafana/: the dashboards, their provisioning and docs/grafana.md, generated from the metric
# catalogue and the table declarations (grafana/generate.py); tests/grafana fails when one is stale
dashboards: $(STAMP)
	$(PY) -m grafana.generate

# dist/ferry-agent_VERSION_ARCH.deb and dist/ferry-collector_…: each a venv of Debian 12's
# /usr/bin/python3 under /opt/ferry (packaging/deb/packages.toml declares them; docs/packaging.md)
deb: $(STAMP)
	$(PY) packaging/deb/build.py --out dist
