"""The durable notification queue: alarm changes -> ``notifications`` rows -> transports, with retries.

Two steps, both driven by the daemon's timer through :meth:`Notifier.run`:

1. *plan*: every new alarm_history entry that a target wants (by severity and
   state) becomes a ``notifications`` row, in the same transaction that moves the
   ``alarm_cursors`` position on, so each state change is queued exactly once
   whichever process caused it (rule engine, panel, retention) and across restarts;
2. *deliver*: due rows are handed to their channel's transport (edge.notify.transports);
   a failure (no route, refused, timeout, non-2xx) is recorded and retried later with
   exponential backoff, so a site that is offline for days notifies when its connection
   comes back. After ``max_attempts``, or at once when retrying cannot help (a malformed
   apprise URL), the row is dead-lettered: status ``failed``, kept, and an event says so.

Network I/O happens outside any database transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable

from edge import alarms
from edge.errors import DeliveryError
from edge.notify.config import NotifyConfig
from edge.notify.transports import Transport, alarm_message, transports_for
from edge.store import transaction

log = logging.getLogger("fieldpost.notify")

CURSOR = "notify"
FIRST_RUN_CATCH_UP_S = 3600.0


def backoff_delay(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after the ``attempts``-th failure: base, 2*base, 4*base ... capped."""
    return min(max_s, base_s * 2 ** max(0, attempts - 1))


class Notifier:
    def __init__(
        self,
        conn_factory: Callable[[], sqlite3.Connection],
        config: NotifyConfig,
        clock: Callable[[], float] = time.time,
        transports: dict[str, Transport] | None = None,
    ):
        self._conn_factory = conn_factory
        self._config = config
        self._clock = clock
        self._transports = transports_for(config) if transports is None else transports
        self._conn: sqlite3.Connection | None = None
        self.stats = {"queued": 0, "sent": 0, "failed_attempts": 0, "gave_up": 0}

    def run(self, now: float | None = None) -> None:
        """Queue notifications for new alarm changes, then send what is due."""
        now = self._clock() if now is None else now
        self.plan(now)
        self.deliver_due(now)

    def plan(self, now: float) -> int:
        conn = self._connection()
        with transaction(conn):
            row = conn.execute("SELECT history_id FROM alarm_cursors WHERE name = ?", (CURSOR,)).fetchone()
            if row is None:
                # First run (notifications just configured): catch up on the last hour only, so an
                # old site does not mail its whole alarm history.
                start = conn.execute(
                    "SELECT COALESCE(MAX(id), 0) FROM alarm_history WHERE at < ?",
                    (now - FIRST_RUN_CATCH_UP_S,),
                ).fetchone()[0]
                conn.execute("INSERT INTO alarm_cursors (name, history_id) VALUES (?, ?)", (CURSOR, start))
            else:
                start = row[0]
            entries = conn.execute(
                "SELECT h.id AS history_id, h.state AS new_state, h.at AS changed_at, a.* FROM alarm_history h"
                " JOIN alarms a ON a.id = h.alarm_id WHERE h.id > ? ORDER BY h.id",
                (start,),
            ).fetchall()
            queued = 0
            # The panel's targets and routes, read each time, beside [notify]'s (imported here:
            # edge.notify_routes builds on this package's Target).
            from edge.notify_routes import panel_targets

            targets = (*self._config.targets, *panel_targets(conn)) if entries else ()
            for entry in entries:
                alarm = alarms.Alarm.from_row(entry)
                body = alarms.outbox_body(alarm, entry["new_state"], entry["changed_at"])
                for target in targets:
                    if target.wants(alarm.severity, entry["new_state"], alarm.rule):
                        conn.execute(
                            "INSERT INTO notifications (alarm_id, channel, target, body, next_attempt_at)"
                            " VALUES (?, ?, ?, ?, ?)",
                            (alarm.id, target.channel, target.target, json.dumps(body), now),
                        )
                        queued += 1
            if entries:
                conn.execute(
                    "UPDATE alarm_cursors SET history_id = ? WHERE name = ?",
                    (entries[-1]["history_id"], CURSOR),
                )
        self.stats["queued"] += queued
        return queued

    def deliver_due(self, now: float) -> int:
        """Try every pending notification whose time has come; return how many were sent."""
        conn = self._connection()
        due = conn.execute(
            "SELECT id, channel, target, body, attempts FROM notifications"
            " WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id",
            (now,),
        ).fetchall()
        sent = 0
        for row in due:
            message = alarm_message(json.loads(row["body"]))
            transport = self._transports.get(row["channel"])
            try:
                if transport is None:
                    raise DeliveryError(
                        row["target"], f"no {row['channel']} transport configured", permanent=True
                    )
                transport.send(row["target"], message)
            except DeliveryError as exc:
                self._failed(conn, row, exc, now)
                continue
            with transaction(conn):
                conn.execute(
                    "UPDATE notifications SET status = 'sent', attempts = attempts + 1, last_error = NULL"
                    " WHERE id = ?",
                    (row["id"],),
                )
            sent += 1
            self.stats["sent"] += 1
            log.info("notification=sent id=%d channel=%s target=%s", row["id"], row["channel"], row["target"])
        return sent

    def send(self, channel: str, target: str, body: dict) -> None:
        """Deliver one alarm-shaped message now, not queued (the panel's "send test"); raises
        DeliveryError naming the target."""
        transport = self._transports.get(channel)
        if transport is None:
            settings = "no [notify.email] SMTP settings" if channel == "email" else f"no {channel} transport"
            raise DeliveryError(target, f"{settings} in the configuration", permanent=True)
        transport.send(target, alarm_message(body))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _failed(self, conn: sqlite3.Connection, row: sqlite3.Row, exc: DeliveryError, now: float) -> None:
        attempts = row["attempts"] + 1
        error = str(exc)[:500]
        self.stats["failed_attempts"] += 1
        with transaction(conn):
            if attempts >= self._config.max_attempts or exc.permanent:
                conn.execute(
                    "UPDATE notifications SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?",
                    (attempts, error, row["id"]),
                )
                conn.execute(
                    "INSERT INTO events (at, kind, message, detail) VALUES (?, 'notification_failed', ?, ?)",
                    (
                        now,
                        f"gave up notifying {row['target']} after {attempts} attempts",
                        json.dumps({"notification": row["id"], "error": error}),
                    ),
                )
                self.stats["gave_up"] += 1
            else:
                delay = backoff_delay(attempts, self._config.backoff_s, self._config.backoff_max_s)
                conn.execute(
                    "UPDATE notifications SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                    (attempts, now + delay, error, row["id"]),
                )
        log.warning(
            "notification=failed id=%d channel=%s target=%s attempts=%d error=%s",
            row["id"],
            row["channel"],
            row["target"],
            attempts,
            error,
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._conn_factory()
        return self._conn


# --------------------------------------------------------------------------- the queue, for people


def queued(conn: sqlite3.Connection, *, status: str | None = None, limit: int = 100) -> list[dict]:
    """Notifications newest first (``status``: pending, sent or failed — the dead letters)."""
    where, args = ("WHERE status = ?", (status,)) if status else ("", ())
    rows = conn.execute(
        "SELECT n.id, n.alarm_id, a.rule, a.severity, n.channel, n.target, n.status, n.attempts,"
        " n.next_attempt_at, n.last_error FROM notifications n JOIN alarms a ON a.id = n.alarm_id "
        f"{where} ORDER BY n.id DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [dict(row) for row in rows]


def retry_dead_letters(conn: sqlite3.Connection, now: float, ids: list[int] | None = None) -> int:
    """Put dead letters (all, or those of ``ids``) back in the queue, due now; returns how many."""
    with transaction(conn):
        if ids:
            marks = ",".join("?" * len(ids))
            cur = conn.execute(
                "UPDATE notifications SET status = 'pending', attempts = 0, next_attempt_at = ?"
                f" WHERE status = 'failed' AND id IN ({marks})",
                (now, *ids),
            )
        else:
            cur = conn.execute(
                "UPDATE notifications SET status = 'pending', attempts = 0, next_attempt_at = ? WHERE status = 'failed'",
                (now,),
            )
    return cur.rowcount
