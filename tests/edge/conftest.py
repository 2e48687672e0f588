"""Fixtures for the edge core tests: a migrated database file, a clock, a codec runner."""

from __future__ import annotations

import pytest

from edge.codecs import CodecRunner
from edge.db import connect


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def db(db_path):
    conn = connect(db_path)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def codecs():
    runner = CodecRunner(timeout_s=1.0)
    try:
        yield runner
    finally:
        runner.close()
