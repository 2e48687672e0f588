"""Alarm lifecycle: raised -> acknowledged -> cleared (or raised -> cleared).

Every state change writes one ``alarm_history`` row and one outbox message with
priority 0 (alarms reach the cloud before readings), in the same transaction as
the change itself. When the caller already has a transaction open the functions
join it, so ingest, retention or the rule engine can raise an alarm atomically
with their own writes; otherwise each call commits on its own.

Whoever wants to react to alarms (the buzzer and LEDs, notifications) reads the
history with :class:`AlarmFeed` instead of being called from here: that way a
change made by any process (the panel acknowledging, retention raising) reaches
them, and a slow buzzer never holds a database transaction open.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Protocol

from edge import outbox
from edge.errors import ValidationError
from edge.store import transaction

log = logging.getLogger("fieldpost.alarms")

SEVERITIES = ("info", "warning", "critical")
STATES = ("raised", "acknowledged", "cleared")


@dataclass(frozen=True)
class Alarm:
    id: int
    rule: str
    device_id: str | None
    severity: str
    state: str
    message: str
    reading_id: int | None
    value: float | None
    raised_at: float
    acknowledged_at: float | None
    acknowledged_by: str | None
    cleared_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Alarm:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    alarm_id: int
    state: str
    at: float
    by: str | None
    note: str | None


# --------------------------------------------------------------------------- lifecycle


def raise_alarm(
    conn: sqlite3.Connection,
    *,
    rule: str,
    device_id: str | None,
    severity: str,
    message: str,
    reading_id: int | None = None,
    value: float | None = None,
    now: float,
) -> int:
    """Store a new alarm in state 'raised' and return its id.

    Does not deduplicate: a caller that must not raise twice for one condition
    (the rule engine) keeps track of the alarm it raised.
    """
    if severity not in SEVERITIES:
        raise ValidationError("severity", f"must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    if not rule:
        raise ValidationError("rule", "must not be empty")
    if not message:
        raise ValidationError("message", "must not be empty")
    with joined_transaction(conn):
        cur = conn.execute(
            "INSERT INTO alarms (rule, device_id, severity, state, message, reading_id, value, raised_at)"
            " VALUES (?, ?, ?, 'raised', ?, ?, ?, ?)",
            (rule, device_id, severity, message, reading_id, value, now),
        )
        assert cur.lastrowid is not None  # sqlite3 sets it after every INSERT
        alarm_id = cur.lastrowid
        _record(conn, alarm_id, "raised", now, by=None)
    log.info("alarm=raised id=%d rule=%s device=%s severity=%s", alarm_id, rule, device_id, severity)
    return alarm_id


def acknowledge(conn: sqlite3.Connection, alarm_id: int, *, by: str, now: float) -> bool:
    """Mark a raised alarm as seen by ``by``; False if it was already acknowledged or cleared."""
    if not by:
        raise ValidationError("by", "must name who acknowledged")
    with joined_transaction(conn):
        alarm = _load(conn, alarm_id)
        if alarm.state != "raised":
            return False
        conn.execute(
            "UPDATE alarms SET state = 'acknowledged', acknowledged_at = ?, acknowledged_by = ? WHERE id = ?",
            (now, by, alarm_id),
        )
        _record(conn, alarm_id, "acknowledged", now, by=by)
    log.info("alarm=acknowledged id=%d by=%s", alarm_id, by)
    return True


def clear(conn: sqlite3.Connection, alarm_id: int, *, now: float, by: str | None = None) -> bool:
    """Close an alarm (its condition is gone); False if it was already cleared."""
    with joined_transaction(conn):
        alarm = _load(conn, alarm_id)
        if alarm.state == "cleared":
            return False
        conn.execute("UPDATE alarms SET state = 'cleared', cleared_at = ? WHERE id = ?", (now, alarm_id))
        _record(conn, alarm_id, "cleared", now, by=by)
    log.info("alarm=cleared id=%d", alarm_id)
    return True


def open_alarms(conn: sqlite3.Connection) -> list[Alarm]:
    """Alarms not cleared yet, most severe first, then newest first."""
    rows = conn.execute(
        "SELECT * FROM alarms WHERE state != 'cleared'"
        " ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, raised_at DESC, id DESC"
    ).fetchall()
    return [Alarm.from_row(row) for row in rows]


def get_alarm(conn: sqlite3.Connection, alarm_id: int) -> Alarm:
    return _load(conn, alarm_id)


def history(conn: sqlite3.Connection, alarm_id: int) -> list[HistoryEntry]:
    rows = conn.execute(
        "SELECT id, alarm_id, state, at, by, note FROM alarm_history WHERE alarm_id = ? ORDER BY id",
        (alarm_id,),
    ).fetchall()
    return [HistoryEntry(*tuple(row)) for row in rows]


def outbox_body(alarm: Alarm, state: str, at: float) -> dict:
    """The JSON document the cloud receives for one state change (TEAM.md contract)."""
    return {
        "id": f"alarm:{alarm.id}:{state}",
        "alarm": alarm.id,
        "rule": alarm.rule,
        "device": alarm.device_id,
        "severity": alarm.severity,
        "state": state,
        "message": alarm.message,
        "ts": at,
        "value": alarm.value,
    }


def _load(conn: sqlite3.Connection, alarm_id: int) -> Alarm:
    row = conn.execute("SELECT * FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
    if row is None:
        raise ValidationError("alarm_id", f"no alarm with id {alarm_id}")
    return Alarm.from_row(row)


def _record(conn: sqlite3.Connection, alarm_id: int, state: str, at: float, *, by: str | None) -> None:
    conn.execute(
        "INSERT INTO alarm_history (alarm_id, state, at, by) VALUES (?, ?, ?, ?)", (alarm_id, state, at, by)
    )
    alarm = _load(conn, alarm_id)
    body = outbox_body(alarm, state, at)
    outbox.enqueue(
        conn,
        msg_id=body["id"],
        kind="alarm",
        body=body,
        device_id=alarm.device_id,
        ref_id=alarm_id,
        priority=outbox.PRIORITY_ALARM,
        now=at,
    )


@contextlib.contextmanager
def joined_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # Join the caller's transaction so that the alarm commits (or not) with its cause.
    if conn.in_transaction:
        yield
    else:
        with transaction(conn):
            yield


# --------------------------------------------------------------------------- listeners


class AlarmListener(Protocol):
    """What the buzzer/LED code (or anything else) implements to follow alarms.

    Methods are called outside any database transaction, in history order.
    """

    def alarm_raised(self, alarm: Alarm) -> None: ...

    def alarm_acknowledged(self, alarm: Alarm) -> None: ...

    def alarm_cleared(self, alarm: Alarm) -> None: ...


class AlarmFeed:
    """Follows ``alarm_history`` and tells listeners about each new state change.

    Starts after the newest history row present when created (a listener that
    needs the current picture reads :func:`open_alarms` once). Call :meth:`poll`
    from the daemon's timer; the rule engine's ``tick`` does so when given a feed.
    """

    def __init__(self, conn: sqlite3.Connection, listeners: list[AlarmListener] | None = None):
        self._conn = conn
        self._listeners: list[AlarmListener] = list(listeners or [])
        row = conn.execute("SELECT COALESCE(MAX(id), 0) FROM alarm_history").fetchone()
        self._cursor = int(row[0])

    def subscribe(self, listener: AlarmListener) -> Callable[[], None]:
        """Add a listener; returns a function that removes it again."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def poll(self) -> int:
        """Dispatch every state change since the last poll; returns how many."""
        rows = self._conn.execute(
            "SELECT h.id AS history_id, h.state AS new_state, a.* FROM alarm_history h"
            " JOIN alarms a ON a.id = h.alarm_id WHERE h.id > ? ORDER BY h.id",
            (self._cursor,),
        ).fetchall()
        for row in rows:
            self._cursor = int(row["history_id"])
            alarm = Alarm.from_row(row)
            method = {
                "raised": "alarm_raised",
                "acknowledged": "alarm_acknowledged",
                "cleared": "alarm_cleared",
            }
            for listener in list(self._listeners):
                try:
                    getattr(listener, method[row["new_state"]])(alarm)
                except Exception:  # a broken LED must not stop the buzzer or the notifier
                    log.exception("alarm_listener_failed listener=%r alarm=%d", listener, alarm.id)
        return len(rows)
