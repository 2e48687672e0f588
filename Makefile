# Fieldpost — every entry point goes through here. `make demo` and `make test` set
# everything up themselves on a fresh Debian machine with Python 3.11.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUILD := build
# Debian packages `make deb` needs: its wheels are built by Debian's own python3.11.
DEB_BUILD_PACKAGES := dpkg-dev binutils gcc git python3-dev python3-venv
# Debian packages the tests and the demo use; installed only when missing. The .deb's tests need
# lintian, mmdebstrap (a fresh Debian root) and systemd-container (systemd-nspawn boots it).
APT_PACKAGES := mosquitto chromium strace $(DEB_BUILD_PACKAGES) lintian mmdebstrap systemd-container
# build/fieldpost_<version>_<arch>.deb, for the architecture this machine runs
DEB_VERSION := $(shell sed -n 's/^version = //p' setup.cfg)-1
DEB := $(BUILD)/fieldpost_$(DEB_VERSION)_$(shell dpkg --print-architecture 2>/dev/null).deb

.PHONY: help venv deps deb deb-deps demo test test-fast lint firmware bench bench-quick clean

help:
	@echo "make demo      run the appliance: virtual modules, edge, panel"
	@echo "make test      set up and run every test"
	@echo "make lint      ruff, ruff format, mypy (edge; firmware against MicroPython stubs)"
	@echo "make deb       the Debian package, $(DEB)"
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

deb-deps:
	@sh scripts/ensure-debian-packages.sh $(DEB_BUILD_PACKAGES)

# Needs no venv: the build makes its own with Debian's python3.11 (packaging/deb/build_deb.py).
deb: deb-deps
	$(PYTHON) packaging/deb/build_deb.py --out $(BUILD) --version $(DEB_VERSION)

demo: $(STAMP) deps
	$(BIN)/python -m edge.demo

# The package tests (tests/packaging) install the .deb built here.
test: $(STAMP) deps deb
	FIELDPOST_DEB=$(CURDIR)/$(DEB) $(BIN)/python -m pytest -n 2 -p no:cacheprovider -q --durations=30

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -m "not slow"

# The firmware is type-checked against the MicroPython stubs of the boards' ports
# (hardware/boards/*.json: esp32 and esp32s3 -> esp32, rp2040 -> rp2), each in its own folder so
# they never mix with the edge's CPython environment.
MP_PORTS := esp32 rp2
MP_STUBS_VERSION := 1.29.0.post1
MP_STDLIB_STUBS := micropython-stdlib-stubs==1.29.0.post2
MP_STUBS := $(BUILD)/mpstubs

$(MP_STUBS)/%/.installed: | $(STAMP)
	rm -rf $(MP_STUBS)/$*
	$(BIN)/python -m pip install --quiet --target $(MP_STUBS)/$* \
		micropython-$*-stubs==$(MP_STUBS_VERSION) $(MP_STDLIB_STUBS)
	touch $@

lint: $(STAMP) $(foreach port,$(MP_PORTS),$(MP_STUBS)/$(port)/.installed)
	$(BIN)/ruff check edge webui provisioning tests packaging setup.py
	$(BIN)/ruff format --check edge webui provisioning tests packaging setup.py
	$(BIN)/mypy  # edge/ webui/ provisioning/, configured in pyproject.toml [tool.mypy]
	cd firmware && for port in $(MP_PORTS); do \
		echo "firmware against the $$port stubs"; \
		MYPYPATH=$(CURDIR)/$(MP_STUBS)/$$port:lib $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/mypy-firmware.ini \
			--custom-typeshed-dir $(CURDIR)/$(MP_STUBS)/$$port --cache-dir $(CURDIR)/$(BUILD)/mypy-$$port \
			fp main.py boot.py linktest.py || exit 1; \
	done

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
