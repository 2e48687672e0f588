"""The overview and device pages show the newest *sensor* values, not a later downlink result."""

from __future__ import annotations

import json

import pytest

from edge.store import connect, migrate, transaction
from webui import queries

DEVICE = "7a4b000000000002"


@pytest.fixture
def conn(tmp_path):
    """A migrated database holding one registered device."""
    conn = connect(tmp_path / "f.db")
    migrate(conn)
    with transaction(conn):
        conn.execute("INSERT INTO devices (id, key, created_at) VALUES (?, ?, 0)", (DEVICE, bytes(16)))
    yield conn
    conn.close()


def _reading(conn, fcnt, port, values, at):
    conn.execute(
        "INSERT INTO readings (device_id, fcnt, port, received_at, raw, decoded) VALUES (?, ?, ?, ?, ?, ?)",
        (DEVICE, fcnt, port, at, b"\x00", json.dumps(values)),
    )


def test_latest_values_are_the_sensor_reading_even_after_a_downlink_result(conn):
    with transaction(conn):
        _reading(conn, 1, 1, [{"channel": 1, "name": "temperature", "value": 4.5, "unit": "°C"}], 100.0)
        _reading(conn, 2, 2, [{"channel": 0, "name": "downlink_result", "value": 0, "unit": ""}], 200.0)
        _reading(conn, 3, 3, [{"channel": 0, "name": "journal", "value": 2, "unit": ""}], 300.0)
    latest = queries.latest_decoded_reading(conn, DEVICE)
    assert latest["fcnt"] == 1 and latest["port"] == 1

    overview = queries.devices_overview(conn, now=400.0, online_intervals=3)
    assert [v["name"] for v in overview[0]["latest"]["values"]] == ["temperature"]


def test_a_module_without_sensor_readings_still_shows_what_it_sent(conn):
    with transaction(conn):
        _reading(conn, 1, 3, [{"channel": 0, "name": "journal", "value": 0, "unit": ""}], 100.0)
    assert queries.latest_decoded_reading(conn, DEVICE)["port"] == 3
