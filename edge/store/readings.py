"""The readings table: each reading kept once, as it arrived, under a key that is its message id.

A reading's id packs the device number and the frame counter, ``number << 32 | fcnt``: it is
the rowid (no separate key column), the dedupe key (no extra unique index) and, printed as
``<device>:<fcnt>``, the stable message id the cloud deduplicates by. A device's readings are
therefore one contiguous key range in fcnt order, which is what sync, the panel and retention
read. Decoded values are not stored: :mod:`edge.store.decode` derives them from ``raw``.

Row layout (see migrations 0008 and 0016): id, received_ms, port, rssi, snr_q, bridge, skew_s,
raw, age_s. Small integers cost SQLite one byte (0 and 1 cost none), so a typical LPP reading with
its radio metadata takes about 29 bytes of record plus the B-tree's share.

Measurement time: ``age_s`` is how long the reading waited on its module before it was sent
(docs/radio.md 0.9), NULL for a fresh one (one header byte) and for sources that carry no age.
The measured time is ``received_ms - 1000 * age_s``: what the panel, export, rules and sync
show and send; the receive time stays beside it.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

FCNT_BITS = 32
FCNT_MASK = (1 << FCNT_BITS) - 1
COLUMNS = "id, received_ms, port, rssi, snr_q, bridge, skew_s, raw, age_s"
INSERT = f"INSERT INTO readings ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Rows of sources that carry no age (ChirpStack, tests' fixtures): the first eight columns.
_INSERT_NO_AGE = f"INSERT INTO readings ({COLUMNS.rsplit(', ', 1)[0]}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
# The measured time of a row in SQL (ms): received_ms when the reading carried no age.
MEASURED_MS = "(received_ms - 1000 * coalesce(age_s, 0))"
# Ports that carry something the cloud receives: sensor readings (1) and module status (3).
# Downlink results (2) reach the cloud as the downlink's status message instead.
SYNCED_PORTS = (1, 3)


def reading_id(number: int, fcnt: int) -> int:
    return (number << FCNT_BITS) | fcnt


def measured_ms(received_ms: int, age_s: int | None) -> int:
    """When a reading was measured: its receive time less the age it arrived with."""
    return received_ms - 1000 * age_s if age_s else received_ms


def split_id(rid: int) -> tuple[int, int]:
    """(device number, fcnt) of a reading id."""
    return rid >> FCNT_BITS, rid & FCNT_MASK


def device_bounds(number: int) -> tuple[int, int]:
    """The smallest and largest reading id a device can have (both inclusive)."""
    low = number << FCNT_BITS
    return low, low | FCNT_MASK


@dataclass(frozen=True, slots=True)
class Reading:
    """One stored reading, with the device and bridge ids resolved."""

    id: int
    device_id: str
    fcnt: int
    port: int
    received_ms: int
    rssi: int | None
    snr_q: int | None
    bridge_id: str | None
    skew_s: int | None
    raw: bytes
    age_s: int | None = None  # how long it waited on the module before it was sent (None: fresh)

    @property
    def received_at(self) -> float:
        return self.received_ms / 1000.0

    @property
    def measured_ms(self) -> int:
        return measured_ms(self.received_ms, self.age_s)

    @property
    def measured_at(self) -> float:
        """When it was measured (Unix seconds): what people and the cloud are shown."""
        return self.measured_ms / 1000.0

    @property
    def snr(self) -> float | None:
        return None if self.snr_q is None else self.snr_q / 4.0

    @property
    def rx_time(self) -> int | None:
        """The bridge's own receive time (Unix seconds), when it sent one."""
        return None if self.skew_s is None else self.received_ms // 1000 + self.skew_s

    @property
    def msg_id(self) -> str:
        return f"{self.device_id}:{self.fcnt}"


Row = tuple  # (id, received_ms, port, rssi, snr_q, bridge, skew_s, raw, age_s), as SELECT COLUMNS gives it


def insert_many(conn: sqlite3.Connection, rows: Iterable[Row]) -> None:
    """Insert rows in the column order of :data:`COLUMNS` (inside the caller's transaction).

    Rows of eight (no ``age_s``: a source that carries none) are stored with a NULL age; every
    row of one call has the same length."""
    it = iter(rows)
    first = next(it, None)
    if first is not None:
        conn.executemany(INSERT if len(first) == 9 else _INSERT_NO_AGE, itertools.chain((first,), it))


def existing(conn: sqlite3.Connection, ids: list[int]) -> dict[int, tuple[int, int, bytes]]:
    """{id: (received_ms, port, raw)} of the ids already stored."""
    out: dict[int, tuple[int, int, bytes]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for rid, ms, port, raw in conn.execute(
            f"SELECT id, received_ms, port, raw FROM readings WHERE id IN ({marks})", chunk
        ):
            out[rid] = (ms, port, bytes(raw))
    return out


def select_rows(
    conn: sqlite3.Connection, low: int, high: int, *, limit: int, descending: bool = False
) -> list[Row]:
    """Rows with ``low <= id <= high`` in id order (or reversed), at most ``limit``."""
    order = "DESC" if descending else ""
    return conn.execute(
        f"SELECT {COLUMNS} FROM readings WHERE id BETWEEN ? AND ? ORDER BY id {order} LIMIT ?",
        (low, high, limit),
    ).fetchall()


def count_between(
    conn: sqlite3.Connection, low: int, high: int, *, ports: tuple[int, ...] | None = None
) -> int:
    params: tuple[int, ...]
    if ports is None:
        sql, params = "SELECT count(*) FROM readings WHERE id BETWEEN ? AND ?", (low, high)
    else:
        marks = ",".join("?" * len(ports))
        sql = f"SELECT count(*) FROM readings WHERE id BETWEEN ? AND ? AND port IN ({marks})"
        params = (low, high, *ports)
    return int(conn.execute(sql, params).fetchone()[0])


def last_id(conn: sqlite3.Connection, number: int) -> int | None:
    low, high = device_bounds(number)
    row = conn.execute("SELECT max(id) FROM readings WHERE id BETWEEN ? AND ?", (low, high)).fetchone()
    return row[0]


def first_at_or_after(conn: sqlite3.Connection, number: int, since_ms: int) -> int | None:
    """The id of the device's first reading received at or after ``since_ms``.

    A device's readings are in fcnt order, and receive times grow with the fcnt (the edge
    refuses a counter that goes back), so a binary search over the key range finds the spot
    in about 32 index seeks instead of a scan. A clock stepped back by NTP can break the
    order locally; callers that need exactness still filter on ``received_ms``.
    """
    low, high = device_bounds(number)
    bounds = conn.execute(
        "SELECT min(id), max(id) FROM readings WHERE id BETWEEN ? AND ?", (low, high)
    ).fetchone()
    if bounds[0] is None:
        return None
    lo, hi = bounds
    probe = "SELECT id, received_ms FROM readings WHERE id >= ? ORDER BY id LIMIT 1"
    if conn.execute(probe, (hi,)).fetchone()[1] < since_ms:
        return None
    # The smallest key x in [lo, hi] whose first reading at or after x was received at or after
    # since_ms; hi qualifies, and the property only turns from false to true as x grows.
    while lo < hi:
        mid = (lo + hi) // 2
        if conn.execute(probe, (mid,)).fetchone()[1] >= since_ms:
            hi = mid
        else:
            lo = mid + 1
    return conn.execute(probe, (lo,)).fetchone()[0]


def iter_device(
    conn: sqlite3.Connection,
    number: int,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    chunk: int = 2000,
) -> Iterator[Row]:
    """A device's rows measured in [start_ms, end_ms), oldest first, read in chunks.

    Measured time is the receive time less the age (never later than received), so the search
    by receive time finds a first row at or before the range. A device measures its readings in
    fcnt order, so the scan ends at the first row measured at or after ``end_ms``."""
    low, high = device_bounds(number)
    if start_ms is not None:
        first = first_at_or_after(conn, number, start_ms)
        if first is None:
            return
        low = first
    while True:
        rows = select_rows(conn, low, high, limit=chunk)
        for row in rows:
            ms = row[1] - 1000 * row[8] if row[8] else row[1]
            if end_ms is not None and ms >= end_ms:
                return
            if start_ms is None or ms >= start_ms:
                yield row
        if len(rows) < chunk:
            return
        low = rows[-1][0] + 1


def newest(
    conn: sqlite3.Connection, number: int, *, limit: int, ports: tuple[int, ...] | None = None
) -> list[Row]:
    """The device's newest rows, newest first (optionally only some ports)."""
    low, high = device_bounds(number)
    if ports is None:
        return select_rows(conn, low, high, limit=limit, descending=True)
    marks = ",".join("?" * len(ports))
    return conn.execute(
        f"SELECT {COLUMNS} FROM readings WHERE id BETWEEN ? AND ? AND port IN ({marks})"
        " ORDER BY id DESC LIMIT ?",
        (low, high, *ports, limit),
    ).fetchall()


def delete_between(conn: sqlite3.Connection, low: int, high: int) -> int:
    return conn.execute("DELETE FROM readings WHERE id BETWEEN ? AND ?", (low, high)).rowcount


def stored_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
