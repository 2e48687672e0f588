"""Fixtures for the sync tests: a real Mosquitto on a free loopback port, a migrated database."""

from __future__ import annotations

import shutil

import pytest
from sync_helpers import MOSQUITTO, Mosquitto, new_db


@pytest.fixture
def broker_factory(tmp_path):
    """``broker_factory(name, tls=None, start=True, password_file=None)`` -> a Mosquitto.

    Every broker made is stopped afterwards, whatever the test did."""
    if not shutil.which(MOSQUITTO):
        pytest.skip("mosquitto is not installed (Debian package 'mosquitto')")
    made: list[Mosquitto] = []

    def make(name: str = "broker", *, tls: dict | None = None, start: bool = True, **options) -> Mosquitto:
        broker = Mosquitto(tmp_path / name, tls=tls, **options)
        made.append(broker)
        return broker.start() if start else broker

    yield make
    for broker in made:
        broker.stop()


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "edge.db"
    conn = new_db(path)
    yield path, conn
    conn.close()
