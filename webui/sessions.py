"""Server-side panel sessions: the cookie carries a random id, the ``panel_sessions`` table the rest.

A session exists while its row does. Logout deletes the row, a password change deletes all of the
user's rows but the one that changed it, "sign out everywhere" all of them: a copied cookie opens
nothing after that. Only the id's SHA-256 is stored, so a stolen database copy holds no live cookie.
Callers own the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

# last_seen is written at most this often per session, so browsing does not write on every request.
TOUCH_EVERY_S = 60.0
USER_AGENT_MAX = 200


@dataclass(frozen=True)
class SessionInfo:
    key: str  # sha256 of the cookie's id: the row's key, safe to show in forms
    user_id: int
    created_at: float
    last_seen: float
    expires_at: float
    address: str
    user_agent: str


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _info(row: sqlite3.Row) -> SessionInfo:
    return SessionInfo(
        key=row["id"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        last_seen=row["last_seen"],
        expires_at=row["expires_at"],
        address=row["address"],
        user_agent=row["user_agent"],
    )


def start(
    conn: sqlite3.Connection,
    user_id: int,
    *,
    now: float,
    lifetime_s: float,
    address: str,
    user_agent: str,
) -> str:
    """A new session for ``user_id``; returns the id for the cookie (shown nowhere else)."""
    session_id = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO panel_sessions (id, user_id, created_at, last_seen, expires_at, address, user_agent)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            _key(session_id),
            user_id,
            now,
            now,
            now + lifetime_s,
            address or "",
            (user_agent or "")[:USER_AGENT_MAX],
        ),
    )
    # Expired rows of anyone go when someone logs in: the table stays as small as the live sessions.
    conn.execute("DELETE FROM panel_sessions WHERE expires_at <= ?", (now,))
    return session_id


def lookup(conn: sqlite3.Connection, session_id: str | None, *, now: float) -> SessionInfo | None:
    """The live session behind a cookie's id, or None (unknown, ended or expired)."""
    if not session_id or not isinstance(session_id, str) or len(session_id) > 100:
        return None
    row = conn.execute(
        "SELECT * FROM panel_sessions WHERE id = ? AND expires_at > ?", (_key(session_id), now)
    ).fetchone()
    return _info(row) if row is not None else None


def needs_touch(info: SessionInfo, now: float) -> bool:
    return now - info.last_seen >= TOUCH_EVERY_S


def touch(conn: sqlite3.Connection, info: SessionInfo, *, now: float, address: str) -> None:
    conn.execute(
        "UPDATE panel_sessions SET last_seen = ?, address = ? WHERE id = ?", (now, address or "", info.key)
    )


def end(conn: sqlite3.Connection, session_id: str | None) -> None:
    if session_id:
        conn.execute("DELETE FROM panel_sessions WHERE id = ?", (_key(session_id),))


def end_by_key(conn: sqlite3.Connection, user_id: int, key: str) -> bool:
    """End one of ``user_id``'s sessions by its key (the revoke button); False when it is not theirs."""
    cur = conn.execute("DELETE FROM panel_sessions WHERE id = ? AND user_id = ?", (key, user_id))
    return cur.rowcount == 1


def end_all(conn: sqlite3.Connection, user_id: int, *, keep: str | None = None) -> int:
    """End every session of ``user_id`` except the one with cookie id ``keep``; return how many."""
    if keep:
        cur = conn.execute("DELETE FROM panel_sessions WHERE user_id = ? AND id != ?", (user_id, _key(keep)))
    else:
        cur = conn.execute("DELETE FROM panel_sessions WHERE user_id = ?", (user_id,))
    return cur.rowcount


def list_for(conn: sqlite3.Connection, user_id: int, *, now: float) -> list[SessionInfo]:
    rows = conn.execute(
        "SELECT * FROM panel_sessions WHERE user_id = ? AND expires_at > ? ORDER BY last_seen DESC",
        (user_id, now),
    ).fetchall()
    return [_info(row) for row in rows]


def key_of(session_id: str) -> str:
    return _key(session_id)


def describe_agent(user_agent: str) -> str:
    """A short name for a browser's User-Agent ("Firefox on Linux"), for the sessions list."""
    ua = user_agent or ""
    browser = next(
        (
            name
            for token, name in (
                ("Edg/", "Edge"),
                ("Firefox/", "Firefox"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
                ("curl/", "curl"),
            )
            if token in ua
        ),
        "a browser",
    )
    system = next(
        (
            name
            for token, name in (
                ("Android", "Android"),
                ("iPhone", "iPhone"),
                ("iPad", "iPad"),
                ("Windows", "Windows"),
                ("Mac OS X", "macOS"),
                ("Linux", "Linux"),
            )
            if token in ua
        ),
        "",
    )
    return f"{browser} on {system}" if system else browser
