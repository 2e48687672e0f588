"""What the pages and the API read, on a store put in a given state (tests/storekit)."""

from __future__ import annotations

import pytest

from edge.store import connect, migrate
from edge.store.query import ReadingReader
from tests.storekit import put_readings
from webui import queries

DEVICE = "7a4b000000000003"
OTHER = "7a4b000000000004"
T0 = 1_700_000_000.0


@pytest.fixture
def reader(tmp_path):
    conn = connect(tmp_path / "f.db")
    migrate(conn)
    reader = ReadingReader(conn)
    yield reader
    reader.close()
    conn.close()


def test_readings_are_paged_by_key_within_the_time_range(reader):
    # fcnt 1..20, one a minute; OTHER's readings sit next to them in the key space
    put_readings(reader.conn, DEVICE, range(1, 21), received_at=[T0 + 60 * i for i in range(1, 21)])
    put_readings(reader.conn, OTHER, range(1, 4), received_at=[T0 + 60 * i for i in range(1, 4)])
    start, end = T0 + 60 * 5, T0 + 60 * 15  # fcnt 5 .. 14

    pages, after = [], 0
    while True:
        page = queries.readings(reader, DEVICE, start=start, end=end, limit=3, after_id=after)
        if not page:
            break
        assert len(page) <= 3
        pages.append([r.fcnt for r in page])
        after = page[-1].id
    assert pages == [[5, 6, 7], [8, 9, 10], [11, 12, 13], [14]]
    assert {r.device_id for r in queries.readings(reader, DEVICE, start=T0, end=end, limit=100)} == {DEVICE}
    # an after_id from before the range does not bring back what is before the start
    first = queries.readings(reader, DEVICE, start=T0, end=end, limit=1)[0]
    assert [
        r.fcnt for r in queries.readings(reader, DEVICE, start=start, end=end, limit=2, after_id=first.id)
    ] == [
        5,
        6,
    ]
    assert queries.readings(reader, "7a4b0000000000ff", start=T0, end=end, limit=5) == []
