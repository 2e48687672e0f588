"""Slowing down password guessing per client address and typed user name, without lockouts.

The first ``free`` failures of an (address, name) pair cost nothing; each one after that doubles
the wait before that pair may try again, up to ``max_delay_s``. The pair is keyed by the name as
typed, whether or not such a user exists, so the answers do not tell names apart; and a guesser on
one address never delays the same user logging in from another. A success clears the pair.
Pure logic on a connection; the caller owns the transaction.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

NAME_MAX = 64  # longer typed names are cut: the table stays small whatever is typed


@dataclass(frozen=True)
class Policy:
    free: int = 3
    base_delay_s: float = 1.0
    max_delay_s: float = 900.0
    forget_after_s: float = 86400.0  # a pair quiet this long starts over


def delay_after(failures: int, policy: Policy) -> float:
    """Seconds to wait after ``failures`` consecutive failures."""
    over = failures - policy.free
    if over <= 0:
        return 0.0
    return min(policy.base_delay_s * (2.0 ** min(over - 1, 40)), policy.max_delay_s)


def _name(username: str) -> str:
    return (username or "").strip().lower()[:NAME_MAX]


def wait_s(conn: sqlite3.Connection, address: str, username: str, *, now: float) -> float:
    """Seconds this pair must still wait before its next attempt is judged (0: go ahead)."""
    row = conn.execute(
        "SELECT blocked_until FROM login_throttle WHERE address = ? AND username = ?",
        (address or "", _name(username)),
    ).fetchone()
    return max(0.0, row["blocked_until"] - now) if row is not None else 0.0


def record_failure(
    conn: sqlite3.Connection, address: str, username: str, *, now: float, policy: Policy
) -> float:
    """Count a failure for the pair; return the seconds it must now wait."""
    key = (address or "", _name(username))
    row = conn.execute(
        "SELECT failures, last_failure FROM login_throttle WHERE address = ? AND username = ?", key
    ).fetchone()
    failures = 1
    if row is not None and now - row["last_failure"] < policy.forget_after_s:
        failures = row["failures"] + 1
    delay = delay_after(failures, policy)
    conn.execute(
        "INSERT INTO login_throttle (address, username, failures, last_failure, blocked_until)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (address, username) DO UPDATE SET"
        " failures = excluded.failures, last_failure = excluded.last_failure,"
        " blocked_until = excluded.blocked_until",
        (*key, failures, now, now + delay),
    )
    # Old pairs go as new ones come, so an address spraying names cannot grow the table for ever.
    conn.execute("DELETE FROM login_throttle WHERE last_failure < ?", (now - policy.forget_after_s,))
    return delay


def clear(conn: sqlite3.Connection, address: str, username: str) -> None:
    conn.execute(
        "DELETE FROM login_throttle WHERE address = ? AND username = ?", (address or "", _name(username))
    )
