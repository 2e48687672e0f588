"""Fixtures for the edge core tests: a migrated database file, a clock, a codec runner."""

from __future__ import annotations

import sys
import textwrap

import pytest

from edge.codecs import CodecRunner
from edge.store import connect


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


PLUGIN = """
import time

def good(payload, port):
    return [{"channel": 1, "name": "level", "value": payload[0] * 2, "unit": "cm"}]

def slow(payload, port):
    while True:
        time.sleep(0.01)

def broken(payload, port):
    raise ValueError("byte 0 out of range")

def wrong(payload, port):
    return {"level": 1}

def formula(payload, port):
    # a codec whose names and units are not to be trusted (they end up in CSV exports)
    return [{"channel": 1, "name": "=HYPERLINK(1)", "value": 2, "unit": "@x"}]
"""


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """An installed plug-in: a module plus a dist-info with fieldpost.codecs entry points."""
    (tmp_path / "fp_test_codecs.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "fp_test_codecs-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fp-test-codecs\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[fieldpost.codecs]\n"
        + "".join(f"tank_{n} = fp_test_codecs:{n}\n" for n in ("good", "slow", "broken", "wrong", "formula"))
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("fp_test_codecs", None)
