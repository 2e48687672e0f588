"""Fixtures every area shares. Area-specific fixtures live in the area's own conftest.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from edge.sim import VirtualModule
from edge.store import connect, migrate

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.01, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that, or fail the test."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture
def virtual_module():
    """Factory: ``virtual_module("linktest.py", ["--echo"], heapsize="64K")`` -> a started
    edge.sim.VirtualModule. Every module it made is killed and its pty closed afterwards,
    whatever the test did; the firmware's output is printed on failure by pytest's capture."""
    made: list[VirtualModule] = []

    def start(entry, args=(), **kwargs) -> VirtualModule:
        vm = VirtualModule(entry, args, **kwargs)
        made.append(vm)
        return vm.start()

    yield start
    for vm in made:
        try:
            vm.close()
        finally:
            if vm.output:
                print(f"--- output of {vm!r} ---\n{vm.output_text()}")


@pytest.fixture
def db_path(tmp_path):
    """A SQLite file with the real schema, migrated and closed again (an area may override this)."""
    path = tmp_path / "fieldpost.db"
    conn = connect(path)
    migrate(conn)
    conn.close()
    return path


@pytest.fixture(name="wait_until")
def wait_until_fixture():
    """The wait_until poller, for test modules (they cannot import conftest reliably)."""
    return wait_until
