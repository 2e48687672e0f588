"""Fixtures for provisioning: a blank virtual module (a bare MicroPython REPL on a pty) and an edge DB."""

from __future__ import annotations

import pytest

from edge.db import connect, migrate
from provisioning.testing import BlankModule


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
def edge_db(tmp_path):
    path = tmp_path / "edge.db"
    conn = connect(path)
    try:
        migrate(conn)
    finally:
        conn.close()
    return path
