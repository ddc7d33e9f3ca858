# isoswitch — every target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean faults fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/isoswitch up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# pytest-timeout fails a hanging test; the outer timeout is the backstop for a
# hang it cannot interrupt (e.g. in a fixture's teardown).
test: lint
	timeout -k 10 1200 $(BIN)/pytest switch acquirer_sim http_front bench isoswitch tests -m "not faults"

# The long fault-injection cases (kill -9, PostgreSQL restart, late answers), loopback only.
faults: $(STAMP)
	timeout -k 10 900 $(BIN)/pytest -q tests/faults

# 100,000 mutated and random ISO frames, and a longer schemathesis run.
fuzz: $(STAMP)
	ISOSWITCH_FUZZ_FRAMES=$${ISOSWITCH_FUZZ_FRAMES:-100000} timeout -k 10 1800 $(BIN)/pytest -m fuzz tests/fuzz -p no:randomly

bench: $(STAMP)
	$(BIN)/isoswitch bench all --out bench/results --report bench/results/report

clean:
	rm -rf $(VENV) .data bench/results
