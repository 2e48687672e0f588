"""Fixtures for the sources tests: a real Mosquitto on a free loopback port (tests/sync's), a
migrated database with the ingest writer running on it."""

from __future__ import annotations

import shutil
import time

import pytest

from edge.ingest import Ingestor
from edge.store import connect, migrate
from tests.sync.sync_helpers import MOSQUITTO, Mosquitto


@pytest.fixture
def broker(tmp_path):
    if not shutil.which(MOSQUITTO):
        pytest.skip("mosquitto is not installed (Debian package 'mosquitto')")
    b = Mosquitto(tmp_path / "chirpstack-broker").start()
    yield b
    b.stop()


@pytest.fixture
def store(tmp_path):
    """(db path, the writer's connection, a running Ingestor)."""
    path = tmp_path / "edge.db"
    conn = connect(path)
    migrate(conn)
    ingest = Ingestor(conn, clock=time.time)
    ingest.start()
    yield path, conn, ingest
    ingest.stop()
    conn.close()
