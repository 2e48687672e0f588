"""Rule state in SQLite (table rule_state), so a restart keeps what matters.

Kept: when a condition began to hold (a freezer warm for 8 of its 10 minutes stays
8 minutes warm after a restart), the alarm a rule raised (so it is not raised a
second time and is cleared when the condition goes), the previous sample for rates,
and the last action time (cooldowns survive restarts). Written in the same
transaction as the alarm or downlink it explains.
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, replace

from edge.rules.evaluate import State

_COLUMNS = "pending_since, pending_reading_id, pending_value, alarm_id, last_value, last_at, last_action_at"


def load(conn: sqlite3.Connection, rule: str, subject: str) -> State:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM rule_state WHERE rule = ? AND subject = ?", (rule, subject)
    ).fetchone()
    if row is None:
        return State()
    state = State(*tuple(row))
    if state.alarm_id is not None:
        # Someone may have cleared the alarm by hand (or retention removed it): then it is not ours any more.
        alarm = conn.execute("SELECT state FROM alarms WHERE id = ?", (state.alarm_id,)).fetchone()
        if alarm is None or alarm[0] == "cleared":
            state = replace(state, alarm_id=None)
    return state


def save(
    conn: sqlite3.Connection, rule: str, subject: str, state: State, *, device_id: str | None, now: float
) -> None:
    if state == State():
        conn.execute("DELETE FROM rule_state WHERE rule = ? AND subject = ?", (rule, subject))
        return
    conn.execute(
        f"INSERT INTO rule_state (rule, subject, device_id, {_COLUMNS}, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (rule, subject) DO UPDATE SET device_id = excluded.device_id,"
        " pending_since = excluded.pending_since, pending_reading_id = excluded.pending_reading_id,"
        " pending_value = excluded.pending_value, alarm_id = excluded.alarm_id,"
        " last_value = excluded.last_value, last_at = excluded.last_at,"
        " last_action_at = excluded.last_action_at, updated_at = excluded.updated_at",
        (rule, subject, device_id, *astuple(state), now),
    )


def subjects(conn: sqlite3.Connection, rule: str) -> list[tuple[str, str | None]]:
    """(subject, device_id) of every subject the rule remembers something about."""
    rows = conn.execute("SELECT subject, device_id FROM rule_state WHERE rule = ? ORDER BY subject", (rule,))
    return [(row[0], row[1]) for row in rows]


def rules_with_state(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT DISTINCT rule FROM rule_state ORDER BY rule")]


def forget_rule(conn: sqlite3.Connection, rule: str) -> None:
    conn.execute("DELETE FROM rule_state WHERE rule = ?", (rule,))
