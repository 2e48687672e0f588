"""Users, passwords and API tokens: small functions on a connection.

Callers own the transaction. Passwords are hashed with argon2id (argon2-cffi); API tokens are
random strings shown once and stored as their SHA-256.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
import sqlite3

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge.errors import ValidationError

ROLES = ("viewer", "operator", "admin")
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,32}$")
MIN_PASSWORD_LEN = 10
MAX_PASSWORD_LEN = 256
TOKEN_PREFIX = "fp_"

# argon2id with OWASP's recommended parameters (19 MiB, 2 passes, 1 lane): a login on a Pi costs tens
# of milliseconds and 19 MiB for a moment, not the library default's 64 MiB. Hashes made with other
# parameters still verify (the parameters are in the hash).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the user does not exist, so a wrong name costs as much time as a wrong
    # password. Made at the first such login, not at import: the daemon need not pay for it at start.
    return _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def burn_verify_time(password: str) -> None:
    verify_password(_dummy_hash(), password)


def has_rank(role: str, needed: str) -> bool:
    return ROLE_RANK.get(role, -1) >= ROLE_RANK[needed]


def validate_username(username: str) -> str:
    username = (username or "").strip()
    if not USERNAME_RE.match(username):
        raise ValidationError("username", "Use 1 to 32 letters, digits or . _ @ -")
    return username


def validate_password(password: str) -> str:
    password = password or ""
    if len(password) < MIN_PASSWORD_LEN:
        raise ValidationError("password", f"Use at least {MIN_PASSWORD_LEN} characters.")
    if len(password) > MAX_PASSWORD_LEN:
        raise ValidationError("password", f"Use at most {MAX_PASSWORD_LEN} characters.")
    return password


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise ValidationError("role", "Choose admin, operator or viewer.")
    return role


def count_users(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT count(*) FROM users").fetchone()[0]


def create_user(
    conn: sqlite3.Connection,
    username: str,
    password: str,
    role: str,
    *,
    now: float,
    hasher: PasswordHasher | None = None,
) -> int:
    """Add a user. ``hasher`` defaults to argon2id's recommended cost; verification reads the cost
    from the stored hash, so users made with another hasher still log in."""
    username = validate_username(username)
    validate_password(password)
    validate_role(role)
    if conn.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
        raise ValidationError("username", "This user name is taken.")
    cur = conn.execute(
        "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
        (username, (hasher or _hasher).hash(password), role, now),
    )
    return cur.lastrowid


def get_user(conn: sqlite3.Connection, user_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()


def find_user(conn: sqlite3.Connection, username: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM users WHERE username = ?", ((username or "").strip(),)).fetchone()


def list_users(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM users ORDER BY username").fetchall()


def set_password(
    conn: sqlite3.Connection, user_id: int, password: str, *, now: float, keep_session: str | None = None
) -> int:
    """Store a new password and end the user's sessions (all but ``keep_session``, the cookie id of
    the session that changed it). Returns how many sessions ended."""
    from webui import sessions

    validate_password(password)
    conn.execute(
        "UPDATE users SET password_hash = ?, password_changed_at = ?, failed_logins = 0, locked_until = NULL"
        " WHERE id = ?",
        (_hasher.hash(password), now, user_id),
    )
    return sessions.end_all(conn, user_id, keep=keep_session)


def set_disabled(conn: sqlite3.Connection, user_id: int, disabled: bool) -> None:
    """Disable (ending every session at once) or enable a user."""
    from webui import sessions

    conn.execute("UPDATE users SET disabled = ? WHERE id = ?", (int(bool(disabled)), user_id))
    if disabled:
        sessions.end_all(conn, user_id)


def session_stamp(user: sqlite3.Row) -> str:
    """Changes whenever the password changes, so older sessions stop working."""
    return hashlib.sha256(user["password_hash"].encode()).hexdigest()[:16]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: sqlite3.Connection, user_id: int, name: str, *, now: float) -> tuple[int, str]:
    """Make an API token for a user; return (id, token). Only the hash is stored."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 64:
        raise ValidationError("name", "Give the token a name of 1 to 64 characters.")
    if get_user(conn, user_id) is None:
        raise ValidationError("user", "No such user.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    cur = conn.execute(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
        (user_id, name, hash_token(token), now),
    )
    return cur.lastrowid, token


def user_for_token(conn: sqlite3.Connection, token: str) -> sqlite3.Row | None:
    """The active user a bearer token belongs to, with ``token_id``; None when unknown or disabled."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return conn.execute(
        "SELECT users.*, api_tokens.id AS token_id FROM api_tokens JOIN users ON users.id = api_tokens.user_id "
        "WHERE api_tokens.token_hash = ? AND users.disabled = 0",
        (hash_token(token),),
    ).fetchone()


def list_tokens(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT api_tokens.id, api_tokens.name, api_tokens.created_at, api_tokens.last_used, users.username "
        "FROM api_tokens JOIN users ON users.id = api_tokens.user_id ORDER BY api_tokens.id"
    ).fetchall()
