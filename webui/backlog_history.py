"""The cloud backlog over time: a sample every few minutes in ``panel_backlog_samples``, taken by
the panel's sampler thread (webui/server.py), shown as a chart on the sync page."""

from __future__ import annotations

import logging
import sqlite3
import threading

from edge.store import connect, cursor, transaction

log = logging.getLogger("fieldpost.webui.backlog")
SAMPLE_EVERY_S = 300
KEEP_S = 30 * 86400


def sample(conn: sqlite3.Connection, *, now: float) -> bool:
    """Record the backlog unless a sample is younger than SAMPLE_EVERY_S; True when one was taken."""
    last = conn.execute("SELECT max(at) FROM panel_backlog_samples").fetchone()[0]
    if last is not None and now - last < SAMPLE_EVERY_S:
        return False
    waiting = cursor.backlog(conn).readings
    outbox = conn.execute("SELECT count(*) FROM outbox WHERE synced_at IS NULL").fetchone()[0]
    with transaction(conn):
        conn.execute(
            "INSERT OR REPLACE INTO panel_backlog_samples (at, readings, outbox) VALUES (?, ?, ?)",
            (int(now), waiting, outbox),
        )
        conn.execute("DELETE FROM panel_backlog_samples WHERE at < ?", (int(now) - KEEP_S,))
    return True


def history(conn: sqlite3.Connection, *, since: float) -> dict[str, list]:
    rows = conn.execute(
        "SELECT at, readings, outbox FROM panel_backlog_samples WHERE at >= ? ORDER BY at", (int(since),)
    ).fetchall()
    return {"times": [r[0] for r in rows], "readings": [r[1] for r in rows], "outbox": [r[2] for r in rows]}


class Sampler:
    """A daemon thread taking a sample now and then; stops with ``stop``."""

    def __init__(self, db_path: str, stop: threading.Event, clock, *, check_every_s: float = 30.0):
        self.db_path, self.stop, self.clock, self.check_every_s = db_path, stop, clock, check_every_s
        self.thread = threading.Thread(target=self._run, daemon=True, name="fieldpost-panel-backlog")

    def start(self) -> Sampler:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                conn = connect(self.db_path)
                try:
                    sample(conn, now=float(self.clock()))
                finally:
                    conn.close()
            except sqlite3.Error as exc:  # a busy or full database: try again next time
                log.warning("event=backlog_sample_failed error=%s", exc)
            self.stop.wait(self.check_every_s)
