"""Reading the indicator status out of the buffer database (alarms, cloud sink health)."""

from __future__ import annotations

import sqlite3

from edge.gpio.patterns import CLOUD_DOWN, CLOUD_NONE, CLOUD_OK, Status


def alarm_state(conn: sqlite3.Connection) -> tuple[frozenset[int], int]:
    """(ids of alarms still 'raised', number of open alarms: raised or acknowledged)."""
    rows = conn.execute("SELECT id, state FROM alarms WHERE state != 'cleared'").fetchall()
    raised = frozenset(row["id"] for row in rows if row["state"] == "raised")
    return raised, len(rows)


def cloud_state(conn: sqlite3.Connection) -> str:
    """CLOUD_DOWN when any sink's latest outcome is an error, CLOUD_OK when all last succeeded,
    CLOUD_NONE when no sink has reported yet."""
    rows = conn.execute("SELECT last_success, last_error_at FROM sync_state").fetchall()
    if not rows:
        return CLOUD_NONE
    for row in rows:
        if row["last_error_at"] is not None and (
            row["last_success"] is None or row["last_error_at"] >= row["last_success"]
        ):
            return CLOUD_DOWN
    return CLOUD_OK


def status_from_db(conn: sqlite3.Connection, *, link_up: bool) -> Status:
    """The daemon knows its links; everything else the indicators show is in the database."""
    raised, open_count = alarm_state(conn)
    return Status(link_up=link_up, cloud=cloud_state(conn), raised_alarms=raised, open_alarms=open_count)
