"""The overview and device pages show the newest *sensor* values, not a later downlink result."""

from __future__ import annotations

import json
import struct

import pytest

from edge.codecs import lpp
from edge.store import connect, migrate, transaction
from edge.store.query import ReadingReader
from tests.storekit import put_readings
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


@pytest.fixture
def reader(conn):
    reader = ReadingReader(conn)
    yield reader
    reader.close()


# What each port carries on the air: a sensor reading (LPP), a downlink result, a module status.
SENSORS = lpp.encode([(1, "temperature", 4.5)])
DOWNLINK_RESULT = struct.pack(">HB", 7, 0)


def status(**fields):
    return json.dumps(fields).encode()


def test_latest_values_are_the_sensor_reading_even_after_a_downlink_result(conn, reader):
    put_readings(conn, DEVICE, [1], received_at=100.0, port=1, raw=SENSORS)
    put_readings(conn, DEVICE, [2], received_at=200.0, port=2, raw=DOWNLINK_RESULT)
    put_readings(conn, DEVICE, [3], received_at=300.0, port=3, raw=status(j=2))
    latest = queries.latest_decoded_reading(reader, DEVICE)
    assert latest.fcnt == 1 and latest.port == 1

    overview = queries.devices_overview(reader, now=400.0, online_intervals=3)
    assert [v["name"] for v in overview[0]["latest"]["values"]] == ["temperature"]


def test_a_module_without_sensor_readings_still_shows_what_it_sent(conn, reader):
    put_readings(conn, DEVICE, [1], received_at=100.0, port=3, raw=status(j=0))
    latest = queries.latest_decoded_reading(reader, DEVICE)
    assert latest.port == 3 and reader.values(latest)[0]["name"] == "journal"


def test_a_reading_that_does_not_decode_leaves_the_last_values_shown(conn, reader):
    put_readings(conn, DEVICE, [1], received_at=100.0, port=1, raw=SENSORS)
    put_readings(conn, DEVICE, [2], received_at=200.0, port=1, raw=b"\x01")  # cut short: not LPP
    latest = queries.latest_decoded_reading(reader, DEVICE)
    assert latest.fcnt == 1 and reader.values(latest)[0]["value"] == 4.5
    frames = queries.raw_frames(reader, DEVICE)
    assert [queries.reading_dict(reader, r)["decode_error"] is not None for r in frames] == [True, False]
