"""Fixtures for the rules and alarms tests: a real SQLite file with the real schema."""

import pytest

from edge.db import connect, migrate


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "fieldpost.db"
    conn = connect(path)
    migrate(conn)
    conn.close()
    return path


@pytest.fixture
def conn(db_path):
    conn = connect(db_path)
    try:
        yield conn
    finally:
        conn.close()
