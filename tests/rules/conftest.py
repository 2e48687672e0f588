"""Fixtures for the rules and alarms tests: a connection to a real SQLite file with the real schema
(``db_path``, shared with the other areas, is in tests/conftest.py)."""

import pytest

from edge.store import connect


@pytest.fixture
def conn(db_path):
    conn = connect(db_path)
    try:
        yield conn
    finally:
        conn.close()
