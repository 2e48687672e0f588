"""Opening the database the one way every part of Fieldpost must open it."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

WAL_SIZE_LIMIT = 4 * 1024 * 1024
READER_CACHE_KIB = 512
WRITER_CACHE_KIB = 2048  # the ingest writer: the readings tree's upper levels and the devices stay cached


def connect(
    path: str | Path, *, readonly: bool = False, timeout: float = 10.0, cache_kib: int = READER_CACHE_KIB
) -> sqlite3.Connection:
    """Open the buffer database.

    ``synchronous=FULL`` in WAL mode makes every COMMIT fsync the WAL before it
    returns, which is what lets the edge ACK a reading right after its commit.
    ``auto_vacuum=INCREMENTAL`` takes effect only on a new file (before the first
    table), and lets retention hand free pages back to the file system.
    Autocommit is off at the driver level (``isolation_level=None``): transactions
    are explicit, via :func:`transaction`.
    """
    if readonly:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
        # After a checkpoint the WAL is cut back to this size instead of keeping its largest size on
        # disk for ever (a retention pass or a backlog can grow it by many MB).
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    conn.row_factory = sqlite3.Row
    # A page cache per connection, and the daemon holds half a dozen (writer, sync, rules, retention,
    # the panel's): small ones by default, so memory does not grow with the database.
    conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """BEGIN (IMMEDIATE: take the write lock now) ... COMMIT, or ROLLBACK on error."""
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run the statements of ``script`` one by one inside the caller's transaction.

    executescript() would COMMIT that transaction first, so a migration would no longer be
    all-or-nothing; the script is split on complete statements instead.
    """
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            conn.execute(current.strip())
            current = ""
    if current.strip():
        conn.execute(current.strip())


class LazyReader:
    """A read-only connection of one's own, opened on first use: for parts that look at the
    database several times a second beside the ingest writer (a WAL reader costs it nothing, and
    a look through the writer would keep it from ever idling). ``close`` when done."""

    def __init__(self, path: str | Path):
        self._path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self._path, readonly=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
