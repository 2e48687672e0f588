"""Indicator status read from a real, migrated SQLite buffer."""

from __future__ import annotations

from edge.gpio.patterns import CLOUD_DOWN, CLOUD_NONE, CLOUD_OK
from edge.gpio.status import status_from_db
from edge.store import connect, migrate, transaction


def test_status_from_db(tmp_path):
    conn = connect(tmp_path / "fp.db")
    try:
        migrate(conn)
        assert status_from_db(conn, link_up=True).cloud == CLOUD_NONE
        with transaction(conn):
            conn.execute(
                "INSERT INTO sync_state (sink, last_success, last_error_at) VALUES ('mqtt', 100, 50)"
            )
            for i, state in enumerate(("raised", "acknowledged", "cleared"), start=1):
                conn.execute(
                    "INSERT INTO alarms (id, rule, severity, state, message, raised_at)"
                    " VALUES (?, 'r', 'warning', ?, 'm', 1)",
                    (i, state),
                )
        status = status_from_db(conn, link_up=False)
        assert status.cloud == CLOUD_OK and not status.link_up
        assert status.raised_alarms == frozenset({1}) and status.open_alarms == 2
        with transaction(conn):
            conn.execute("UPDATE sync_state SET last_error_at = 200")
        assert status_from_db(conn, link_up=True).cloud == CLOUD_DOWN
    finally:
        conn.close()
