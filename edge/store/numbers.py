"""Device numbers: the small integer a device id (16 hex digits) is stored as in readings.

A number is given the first time an id is registered or heard as a bridge, and never
changes or goes away (the table holds a row per id ever seen: a few bytes each), so a
reading outlives its device's registration and any process may cache the mapping.
"""

from __future__ import annotations

import sqlite3
import threading


def number_of(conn: sqlite3.Connection, device_id: str) -> int | None:
    row = conn.execute("SELECT n FROM device_numbers WHERE id = ?", (device_id,)).fetchone()
    return None if row is None else int(row[0])


def ensure(conn: sqlite3.Connection, device_id: str) -> int:
    """The device's number, given now if it has none (inside the caller's transaction)."""
    conn.execute("INSERT INTO device_numbers (id) VALUES (?) ON CONFLICT (id) DO NOTHING", (device_id,))
    return int(conn.execute("SELECT n FROM device_numbers WHERE id = ?", (device_id,)).fetchone()[0])


def all_numbers(conn: sqlite3.Connection) -> dict[int, str]:
    return {int(n): i for n, i in conn.execute("SELECT n, id FROM device_numbers")}


class Numbers:
    """A cache of the mapping in both directions, safe to share between threads.

    Entries never go stale (numbers never change), so the cache is only ever filled; it
    holds one entry per device the site has (bounded by the registry, not by readings).
    """

    def __init__(self) -> None:
        self._by_id: dict[str, int] = {}
        self._by_number: dict[int, str] = {}
        self._lock = threading.Lock()

    def _remember(self, number: int, device_id: str) -> None:
        with self._lock:
            self._by_id[device_id] = number
            self._by_number[number] = device_id

    def number(self, conn: sqlite3.Connection, device_id: str, *, create: bool = False) -> int | None:
        found = self._by_id.get(device_id)
        if found is not None:
            return found
        number = ensure(conn, device_id) if create else number_of(conn, device_id)
        if number is not None:
            self._remember(number, device_id)
        return number

    def device_id(self, conn: sqlite3.Connection, number: int | None) -> str | None:
        if number is None:
            return None
        found = self._by_number.get(number)
        if found is not None:
            return found
        row = conn.execute("SELECT id FROM device_numbers WHERE n = ?", (number,)).fetchone()
        if row is None:
            return None
        self._remember(number, row[0])
        return row[0]
