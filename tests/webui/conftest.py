"""Panel fixtures: an app on a temporary database with one user per role, and logged-in clients."""

from __future__ import annotations

import pytest

from tests.webui.helpers import login, make_token, make_user
from webui import create_app

SETUP_CODE = "setup-code-for-tests"


@pytest.fixture
def db_path(tmp_path):
    return str(tmp_path / "fieldpost.db")


@pytest.fixture
def empty_app(db_path):
    """An app on a fresh database with no user yet (first run)."""
    return create_app(
        {
            "DATABASE": db_path,
            "SECRET_KEY": "test-secret",
            "SETUP_CODE": SETUP_CODE,
            "TESTING": True,
        }
    )


@pytest.fixture
def app(empty_app, db_path):
    for name, role in (("alice", "admin"), ("oscar", "operator"), ("vera", "viewer")):
        make_user(db_path, name, role)
    return empty_app


@pytest.fixture
def client(app):
    return app.test_client()


def _client_as(app, username):
    c = app.test_client()
    response = login(c, username)
    assert response.status_code == 302, response.get_data(as_text=True)
    return c


@pytest.fixture
def admin(app):
    return _client_as(app, "alice")


@pytest.fixture
def operator(app):
    return _client_as(app, "oscar")


@pytest.fixture
def viewer(app):
    return _client_as(app, "vera")


@pytest.fixture
def tokens(app, db_path):
    return {
        role: make_token(db_path, name)
        for role, name in (
            ("admin", "alice"),
            ("operator", "oscar"),
            ("viewer", "vera"),
        )
    }
