# Fieldpost — every entry point goes through here. `make demo` and `make test` set
# everything up themselves on a fresh Debian machine with Python 3.11.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUILD := build
# Debian packages the tests and the demo use; installed only when missing.
APT_PACKAGES := mosquitto chromium strace

.PHONY: help venv deps demo test test-fast lint firmware bench bench-quick clean

help:
	@echo "make demo      run the appliance: virtual modules, edge, panel"
	@echo "make test      set up and run every test"
	@echo "make lint      ruff"
	@echo "make firmware  mpy-cross every firmware file into $(BUILD)/"
	@echo "make bench     run the benchmarks, figures in $(BUILD)/bench/ (bench-quick: small sizes)"

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[sim,test]'
	touch $(STAMP)

venv: $(STAMP)

deps:
	@sh scripts/ensure-debian-packages.sh $(APT_PACKAGES)

demo: $(STAMP) deps
	$(BIN)/python -m edge.demo

test: $(STAMP) deps
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check edge webui provisioning tests
	$(BIN)/ruff format --check edge webui provisioning tests

firmware: $(STAMP)
	$(BIN)/python -m edge.tools.build_firmware --out $(BUILD)/firmware

# Full sizes (10 M readings, a 1 M backlog): tens of minutes and several GB of disk.
bench: $(STAMP) deps
	mkdir -p $(BUILD)/bench
	$(BIN)/python -m tests.bench --out $(BUILD)/bench

# The same measurements at small sizes, in a few minutes.
bench-quick: $(STAMP) deps
	mkdir -p $(BUILD)/bench
	$(BIN)/python -m tests.bench --quick --out $(BUILD)/bench

clean:
	rm -rf $(BUILD) .pytest_cache
