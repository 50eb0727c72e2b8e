# aigw: the two commands the README opens with are `make demo` and `make test`.
# Both create what they need on first use: a virtualenv in .venv and the npm
# packages of the end-to-end tests in e2e/node_modules.

# The interpreter of .venv and of the benchmark's peers: Debian's own python3 where
# there is one, the interpreter the package runs on (debian/rules: dh_virtualenv
# --python /usr/bin/python3), so that the tests and `make bench` see what a server
# runs; else the first python3 on PATH.  PYTHON=... picks another.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := e2e/node_modules/.installed-stamp
PYTEST_ARGS ?=

.PHONY: all demo demo-once test lint typecheck unit e2e check-config clean venv node bench bench-setup bench-micro bench-scale bench-floor deb security-report fuzz keycloak-check soak

all: test

# The editable install uses setuptools' "compat" mode: it puts the checkout on
# sys.path, which is what lets twistd find twisted/plugins/aigw_plugin.py
# (the strict/lenient modes hide that folder from Twisted's plugin scan).
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]' --config-settings editable_mode=compat
	touch $@

venv: $(STAMP)

$(NODE_STAMP): e2e/package.json e2e/package-lock.json
	cd e2e && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: $(NODE_STAMP)

demo: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m demo

demo-once: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m demo --once

lint: $(STAMP)
	$(BIN)/ruff check aigw tests bench twisted demo
	$(BIN)/ruff format --check aigw tests bench twisted demo
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# Every test: lint, types, then pytest (its summary line is the last thing printed).
test: $(STAMP) $(NODE_STAMP) lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# aigw against a real Keycloak (README, "Keycloak"): make keycloak-check KC=http://localhost:8080
# (admin credentials in KC_ADMIN / KC_ADMIN_PASSWORD); creates and deletes realm aigw-check.
KC ?= http://localhost:8080
keycloak-check: $(STAMP)
	$(BIN)/python -m tests.keycloak_check $(KC)

# The attack tests of docs/security.md, their results written into its table.
security-report: $(STAMP)
	$(BIN)/python -m tests.security_report

# atheris (coverage-guided) on the parsers, FUZZ_SECONDS in all, shared by the
# targets (bench/fuzz/parsers.py); not part of `make test`, whose hypothesis
# strategies (tests/unit/fuzz/) run a bounded number of examples.  A finding is
# written to bench/fuzz/findings/<target>-crash-* and fails the target.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= jsonrpc sse header config jwt

fuzz: $(STAMP)
	@$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/pip install --quiet atheris || { \
		echo "make fuzz: atheris did not install (it needs a wheel for this Python, or clang with libFuzzer to build)" >&2; exit 1; }
	@mkdir -p bench/fuzz/findings
	@per=$$(( $(FUZZ_SECONDS) / $(words $(FUZZ_TARGETS)) )); [ $$per -ge 1 ] || per=1; \
	for target in $(FUZZ_TARGETS); do \
		echo "fuzz: $$target for $$per s"; \
		$(BIN)/python bench/fuzz/parsers.py $$target -max_total_time=$$per -print_final_stats=1 \
			-artifact_prefix=bench/fuzz/findings/$$target- || exit 1; \
	done

# The soak (docs/performance.md, "Soak"; not part of `make test`): SOAK_SECONDS
# (60) of SOAK_CLIENTS (50) clients through a real aigw, the test authorization
# server and real upstreams (tests/soak/).  Fails on any failed request, RSS
# growth over 5% after the warm-up, or file descriptors left open.  Ends with
#   soak: requests=<n> failed=<n> rss_growth_pct=<n> fds_delta=<n>
export SOAK_SECONDS SOAK_CLIENTS SOAK_WARMUP SOAK_SETTLE

soak: $(STAMP) $(NODE_STAMP)
	PYTHONPATH=$(CURDIR) $(BIN)/python -m tests.soak

# The benchmark (docs/performance.md): aigw against the upstream called
# directly and against its peers, all on 127.0.0.1; 2-3 minutes.  Needs wrk
# (Debian: apt-get install wrk); the peers go into bench/.venvs.
# BENCH_ARGS, e.g. BENCH_ARGS="--rows direct,aigw --rounds 1".
bench-setup:
	PYTHON=$(PYTHON) sh bench/setup.sh

bench: $(STAMP) $(NODE_STAMP) bench-setup
	@command -v wrk >/dev/null 2>&1 || { echo "make bench needs wrk: apt-get install wrk" >&2; exit 1; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# How cost grows with backends (tools/list fan-out over 1, 5, 20), with processes
# on one port (1, 2, 3) and with open sessions and streams (memory per idle
# session and per open stream); about 7 minutes, no peers.  SCALE_ARGS, e.g. SCALE_ARGS="--parts fanout --rounds 1"
# or SCALE_ARGS="--json -" (JSON on stdout instead of the tables).
bench-scale: $(STAMP) $(NODE_STAMP)
	@command -v wrk >/dev/null 2>&1 || { echo "make bench-scale needs wrk: apt-get install wrk" >&2; exit 1; }
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

# The floor of a lone call: aigw's added p50 at concurrency 1 beside two do-nothing
# relays on Twisted in front of the same upstream (bytes; twisted.web's HTTP server),
# rounds interleaved; about 2 minutes.  FLOOR_ARGS, e.g. FLOOR_ARGS="--rounds 10".
bench-floor: $(STAMP) $(NODE_STAMP)
	@command -v wrk >/dev/null 2>&1 || { echo "make bench-floor needs wrk: apt-get install wrk" >&2; exit 1; }
	$(BIN)/python bench/floor.py $(FLOOR_ARGS)

bench-micro: $(STAMP)
	$(BIN)/python bench/micro.py
	$(BIN)/python bench/bench_tokens.py

# The Debian package (dh-virtualenv, like Synapse's): ../aigw_<version>_<arch>.deb.
# Build dependencies: apt-get install dh-virtualenv debhelper dh-exec python3-venv python3-dev
# Then: lintian ../aigw_*.changes (no errors; the accepted warnings are in
# debian/aigw.lintian-overrides).  AIGW_TEST_DEB=1 pytest tests/packaging/test_deb.py
# builds HEAD, runs lintian and installs, removes and purges it (as root).
deb:
	dpkg-buildpackage -us -uc -b

check-config: $(STAMP)
	$(BIN)/aigw check etc/aigw/aigw.yaml

clean:
	rm -rf $(VENV) e2e/node_modules bench/.venvs build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find twisted/plugins -name dropin.cache -delete
