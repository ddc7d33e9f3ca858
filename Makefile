# isoswitch — every target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

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
	timeout -k 10 1200 $(BIN)/pytest switch acquirer_sim http_front bench tests

bench: $(STAMP)
	$(BIN)/isoswitch bench all --out bench/results

clean:
	rm -rf $(VENV) .data bench/results
