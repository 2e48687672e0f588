"""One SQLite connection per request, on ``g``.

The panel shares the buffer database with the edge daemon. WAL lets the panel read while ingest
writes; the panel's own writes are short explicit transactions (``with write() as conn:``) so they
never hold the write lock across template rendering or network I/O.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from flask import current_app, g

from edge.store import connect, transaction
from edge.store.query import ReadingReader


def open_db() -> sqlite3.Connection:
    """A fresh connection to the configured database (for streams that outlive a request)."""
    return connect(current_app.config["DATABASE"], timeout=current_app.config["DB_TIMEOUT_S"])


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = open_db()
    return g.db


def reader_for(conn: sqlite3.Connection) -> ReadingReader:
    """Readings of ``conn``, decoded with the app's codec runner."""
    ext = current_app.extensions
    return ReadingReader(conn, ext["fieldpost_codecs"], numbers=ext["fieldpost_numbers"])


def get_reader() -> ReadingReader:
    """The request's reading reader (on the request's connection)."""
    if "reader" not in g:
        g.reader = reader_for(get_db())
    return g.reader


@contextlib.contextmanager
def write() -> Iterator[sqlite3.Connection]:
    """A short write transaction on the request's connection."""
    conn = get_db()
    with transaction(conn):
        yield conn


def close_db(_exc: BaseException | None = None) -> None:
    g.pop("reader", None)
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def now() -> float:
    """The panel's clock (config CLOCK), so tests can pin time."""
    return float(current_app.config["CLOCK"]())
