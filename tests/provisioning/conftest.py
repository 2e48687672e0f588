"""Fixtures for provisioning: a blank virtual module (a bare MicroPython REPL on a pty) and an edge DB."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from provisioning.testing import BlankModule

# the edge tests' firmware helpers (tests/edge/edge_firmware_site.py) serve these tests too
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edge"))


@pytest.fixture
def blank_module(tmp_path):
    module = BlankModule(tmp_path / "flash").start()
    try:
        yield module
    finally:
        module.close()
        if module.vm.output:
            print(f"--- output of {module.vm!r} ---\n{module.vm.output_text()}")


@pytest.fixture(scope="session")
def mpy_cache(tmp_path_factory):
    # mpy-cross output cached across the session: the firmware compiles once.
    return tmp_path_factory.mktemp("mpy-cache")


@pytest.fixture
def edge_db(db_path):
    """The edge database modules are registered with: the shared migrated db_path (tests/conftest.py)."""
    return db_path
