"""Log in, first run, lockout, rate limit, session cookies, CSRF."""

from __future__ import annotations

import re

from edge.store import connect
from tests.webui.conftest import SETUP_CODE
from tests.webui.helpers import PASSWORD, csrf_token, login, make_user
from webui import create_app


def test_first_run_redirects_everything_to_setup(empty_app):
    c = empty_app.test_client()
    assert c.get("/").headers["Location"].startswith("/login")
    assert c.get("/login").headers["Location"] == "/setup"
    page = c.get("/setup")
    assert page.status_code == 200
    assert "no default password" in page.get_data(as_text=True).lower()


def test_first_run_needs_the_setup_code_and_creates_the_admin(empty_app, db_path):
    c = empty_app.test_client()
    token = csrf_token(c, "/setup")
    form = {
        "csrf_token": token,
        "username": "root",
        "password": PASSWORD,
        "confirm": PASSWORD,
    }
    wrong = c.post("/setup", data={**form, "setup_code": "guess"})
    assert wrong.status_code == 400
    assert "not the setup code" in wrong.get_data(as_text=True)
    short = c.post(
        "/setup",
        data={
            **form,
            "setup_code": SETUP_CODE,
            "password": "short",
            "confirm": "short",
        },
    )
    assert short.status_code == 400
    assert "at least 10" in short.get_data(as_text=True)
    ok = c.post("/setup", data={**form, "setup_code": SETUP_CODE})
    assert ok.status_code == 302 and ok.headers["Location"] == "/"
    assert c.get("/").status_code == 200  # signed in as the new admin
    conn = connect(db_path)
    user = conn.execute("SELECT * FROM users").fetchone()
    assert user["username"] == "root" and user["role"] == "admin"
    assert user["password_hash"].startswith("$argon2id$") and PASSWORD not in user["password_hash"]
    assert conn.execute("SELECT action FROM audit_log").fetchone()["action"] == "user.create"
    # The first-run page is gone once a user exists.
    assert empty_app.test_client().get("/setup").headers["Location"] == "/login"


def test_setup_code_is_generated_and_written_when_not_configured(db_path):
    app = create_app({"DATABASE": db_path, "SECRET_KEY": "s"})
    code = app.config["SETUP_CODE"]
    with open(db_path + ".setup-code") as f:
        assert code and f.read().strip() == code


def test_login_success_and_wrong_password(client):
    bad = login(client, "alice", "wrong password!")
    assert bad.status_code == 401
    assert "Wrong user name or password." in bad.get_data(as_text=True)
    unknown = login(client, "nobody", "wrong password!")
    assert "Wrong user name or password." in unknown.get_data(as_text=True)
    good = login(client, "alice")
    assert good.status_code == 302
    assert "alice (admin)" in client.get("/").get_data(as_text=True)


def test_failures_double_the_wait_for_that_address_and_name_and_never_lock(app, db_path):
    clock = [1_000_000.0]
    app.config.update(CLOCK=lambda: clock[0], LOGIN_MAX_FAILURES=3)
    c = app.test_client()
    for _ in range(3):  # free
        assert login(c, "oscar", "not the password").status_code == 401
    assert login(c, "oscar", "not the password").status_code == 401  # the 4th: now wait 1 s
    waiting = login(c, "oscar")  # the right password, too early: not even judged
    assert waiting.status_code == 429 and "Wait 2 s" in waiting.get_data(as_text=True)
    clock[0] += 1.01
    assert login(c, "oscar", "not the password").status_code == 401  # the 5th: now 2 s
    clock[0] += 1.5
    assert login(c, "oscar").status_code == 429
    clock[0] += 0.6
    assert login(c, "oscar").status_code == 302  # never locked: the wait is over
    conn = connect(db_path)
    assert conn.execute("SELECT count(*) FROM login_throttle").fetchone()[0] == 0  # a success clears it
    row = conn.execute("SELECT failed_logins, locked_until FROM users WHERE username = 'oscar'").fetchone()
    assert (row["failed_logins"], row["locked_until"]) == (0, None)


def test_login_rate_limit_per_address(db_path):
    app = create_app(
        {
            "DATABASE": db_path,
            "SECRET_KEY": "s",
            "SETUP_CODE": "x",
            "LOGIN_RATE_LIMIT": "3 per minute",
        }
    )
    make_user(db_path, "alice", "admin")
    c = app.test_client()
    statuses = [login(c, "alice", "wrong password!").status_code for _ in range(4)]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3] == 429
    # Reading the login page is not limited.
    assert c.get("/login").status_code == 200


def test_session_cookie_flags(client):
    response = login(client, "alice")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_session_cookie_secure_with_https(db_path, tmp_path):
    app = create_app(
        {
            "DATABASE": db_path,
            "SECRET_KEY": "s",
            "SETUP_CODE": "x",
            "TLS_CERT": str(tmp_path / "c.pem"),
            "TLS_KEY": str(tmp_path / "k.pem"),
        }
    )
    make_user(db_path, "alice", "admin")
    c = app.test_client()
    response = login(c, "alice")
    assert "Secure" in response.headers["Set-Cookie"]


def test_post_without_csrf_token_is_refused(admin, db_path):
    response = admin.post("/settings/cloud", data={"endpoint": "mqtts://broker.example:8883"})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    forged = admin.post("/settings/cloud", data={"endpoint": "mqtts://x:1", "csrf_token": "forged"})
    assert forged.status_code == 400
    assert connect(db_path).execute("SELECT count(*) FROM settings").fetchone()[0] == 0
    assert admin.post("/login", data={"username": "alice", "password": PASSWORD}).status_code == 400


def test_logout_ends_the_session(admin):
    token = csrf_token(admin)
    assert admin.post("/logout", data={"csrf_token": token}).status_code == 302
    assert admin.get("/").headers["Location"].startswith("/login")


def test_disabled_user_and_changed_password_end_sessions(operator, db_path):
    conn = connect(db_path)
    assert operator.get("/").status_code == 200
    conn.execute("UPDATE users SET password_hash = 'changed' WHERE username = 'oscar'")
    assert operator.get("/").status_code == 302


def test_next_parameter_is_never_an_open_redirect(client):
    token = csrf_token(client, "/login")
    r = client.post(
        "/login?next=//evil.example/",
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
    )
    assert r.headers["Location"] == "/"
    assert re.match(r"^/", r.headers["Location"])
