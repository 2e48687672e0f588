"""The fixed attack list: what an attacker on the site LAN tries against the panel's sign-in.

Open redirects, cookie replay after logout and after a password change, revoked sessions, lockout
abuse, user-name enumeration, CSRF on every POST, XSS through what the sessions list shows back,
and the TOTP second factor.
"""

from __future__ import annotations

import re
import statistics
import time

import pytest

from edge.store import connect, transaction
from tests.webui.helpers import PASSWORD, csrf_token, login, make_user
from webui import accounts, totp

COOKIE = "fieldpost_session"
REDIRECTS = [
    "//evil.example/",
    "/\\evil.example/",
    "\\/evil.example/",
    "/\t/evil.example/",
    "/%09/evil.example/",
    "/%2F/evil.example/",
    "%2F%2Fevil.example/",
    "/%252F%252Fevil.example/",
    "/%5C/evil.example/",
    "https://evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
    "/\n/evil.example/",
    "///evil.example/",
    "http:/evil.example",
]


def _client(app, address: str, agent: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = address
    c.environ_base["HTTP_USER_AGENT"] = agent
    return c


def _cookie(c) -> str:
    return c.get_cookie(COOKIE).value


def _replay(app, value: str):
    """A fresh client carrying a copied session cookie, as a thief would."""
    thief = _client(app, "10.9.9.9")
    thief.set_cookie(COOKIE, value)
    return thief


def _signed_in(c) -> bool:
    return c.get("/settings").status_code == 200


@pytest.mark.parametrize("target", REDIRECTS)
def test_next_never_leaves_the_site(client, target):
    token = csrf_token(client, "/login")
    r = client.post(
        "/login",
        query_string={"next": target},
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
    )
    assert r.status_code == 302 and r.headers["Location"] == "/", target
    again = client.get("/login", query_string={"next": target})  # signed in already
    assert again.headers["Location"] == "/", target


def test_next_keeps_a_same_site_path(client):
    token = csrf_token(client, "/login")
    r = client.post(
        "/login?next=/alarms%3Fstate%3Dopen",
        data={"csrf_token": token, "username": "alice", "password": PASSWORD},
    )
    assert r.headers["Location"] == "/alarms?state=open"


def test_cookie_replay_after_logout_opens_nothing(app):
    c = _client(app, "10.0.0.2")
    assert login(c, "alice").status_code == 302
    stolen = _cookie(c)
    assert _signed_in(_replay(app, stolen))  # a copy works while the session lives ...
    c.post("/logout", data={"csrf_token": csrf_token(c)})
    assert not _signed_in(_replay(app, stolen))  # ... and not after logout


def test_password_change_ends_every_other_session(app, db_path):
    here, there = _client(app, "10.0.0.2"), _client(app, "10.0.0.3")
    assert login(here, "oscar").status_code == 302 and login(there, "oscar").status_code == 302
    before = _cookie(here)
    token = csrf_token(here, "/account")
    wrong = here.post(
        "/account/password",
        data={
            "csrf_token": token,
            "pw-current": "not it at all",
            "pw-password": "n" * 12,
            "pw-confirm": "n" * 12,
        },
    )
    assert wrong.status_code == 400 and "not your current password" in wrong.get_data(as_text=True)
    ok = here.post(
        "/account/password",
        data={"csrf_token": token, "pw-current": PASSWORD, "pw-password": "n" * 12, "pw-confirm": "n" * 12},
    )
    assert ok.status_code == 302
    uid = accounts.find_user(connect(db_path), "oscar")["id"]
    live = connect(db_path).execute("SELECT count(*) FROM panel_sessions WHERE user_id = ?", (uid,))
    assert live.fetchone()[0] == 1  # the other session's row is gone, not merely refused
    assert here.get("/account").status_code == 200  # the session that changed it goes on
    assert there.get("/account").status_code == 302  # every other one ended at once
    assert _replay(app, before).get("/account").status_code == 302  # and a copy from before the change
    assert login(_client(app, "10.0.0.4"), "oscar").status_code == 401
    assert login(_client(app, "10.0.0.4"), "oscar", "n" * 12).status_code == 302
    audit = connect(db_path).execute("SELECT action FROM audit_log ORDER BY id DESC").fetchone()
    assert audit["action"] == "user.password_change"


def test_admin_password_reset_ends_the_users_sessions(app, admin):
    victim = _client(app, "10.0.0.5")
    assert login(victim, "oscar").status_code == 302
    token = csrf_token(admin, "/settings")
    uid = accounts.find_user(connect(app.config["DATABASE"]), "oscar")["id"]
    r = admin.post(
        f"/settings/users/{uid}",
        data={"csrf_token": token, f"u{uid}-role": "operator", f"u{uid}-password": "r" * 12},
    )
    assert r.status_code == 302
    assert victim.get("/").status_code == 302


def test_my_sessions_list_revoke_and_sign_out_everywhere(app):
    laptop = _client(app, "10.0.0.2")
    phone = _client(
        app, "10.0.0.3", agent="Mozilla/5.0 (Linux; Android 14) Chrome/130.0 <script>alert(1)</script>"
    )
    other = _client(app, "10.0.0.4")
    for c, name in ((laptop, "vera"), (phone, "vera"), (other, "oscar")):
        assert login(c, name).status_code == 302
    page = laptop.get("/account").get_data(as_text=True)
    assert "Firefox on Linux" in page and "Chrome on Android" in page
    assert "10.0.0.3" in page and "this one" in page
    assert "<script>alert(1)" not in page  # nothing a client sends is shown unescaped
    keys = re.findall(r'action="/account/sessions/([0-9a-f]{64})/revoke"', page)
    assert len(keys) == 2
    phone_key = next(k for k in keys if f"session-{k[:12]}" in page.split("Chrome on Android")[0][-400:])
    token = csrf_token(laptop, "/account")
    # someone else's session is not mine to end
    other_key = re.findall(
        r"/account/sessions/([0-9a-f]{64})/revoke", other.get("/account").get_data(as_text=True)
    )[0]
    assert laptop.post(f"/account/sessions/{other_key}/revoke", data={"csrf_token": token}).status_code == 404
    assert other.get("/account").status_code == 200
    # a viewer may end their own session (the only POSTs a viewer has)
    assert laptop.post(f"/account/sessions/{phone_key}/revoke", data={"csrf_token": token}).status_code == 302
    assert phone.get("/account").status_code == 302
    assert laptop.get("/account").status_code == 200
    assert login(phone, "vera").status_code == 302
    stolen = _cookie(laptop)
    r = laptop.post("/account/sessions/end-all", data={"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/login"
    assert phone.get("/account").status_code == 302 and laptop.get("/account").status_code == 302
    assert _replay(app, stolen).get("/account").status_code == 302
    assert other.get("/account").status_code == 200  # other users are untouched


def test_an_attackers_wrong_passwords_do_not_stop_the_admin_elsewhere(app):
    app.config["LOGIN_RATE_LIMIT"] = "1000 per minute"  # the throttle alone stands in the way
    attacker = _client(app, "10.6.6.6")
    statuses = [login(attacker, "alice", f"guess number {i}").status_code for i in range(100)]
    assert statuses[:5] == [401] * 5 and statuses.count(429) >= 90  # the guesser is slowed down ...
    assert login(attacker, "alice").status_code == 429  # ... even the right password waits there
    assert login(_client(app, "10.0.0.2"), "alice").status_code == 302  # ... and the admin gets in


def test_unknown_users_and_wrong_passwords_answer_alike(app, db_path):
    app.config.update(LOGIN_RATE_LIMIT="1000 per minute", LOGIN_MAX_FAILURES=3)
    conn = connect(db_path)
    with transaction(conn):  # the real hashing cost, as for every real user
        accounts.create_user(conn, "root", PASSWORD, "admin", now=time.time())

    def attempt(c, name):
        token = csrf_token(c, "/login")
        started = time.perf_counter()
        r = c.post("/login", data={"csrf_token": token, "username": name, "password": "wrong password!"})
        took = time.perf_counter() - started
        body = re.sub(r'name="csrf_token"[^>]*value="[^"]+"', "", r.get_data(as_text=True)).replace(
            name, "NAME"
        )
        return r.status_code, body, took

    real, ghost = _client(app, "10.0.1.1"), _client(app, "10.0.1.2")
    answers = {"real": [], "ghost": []}
    for _ in range(5):  # interleaved, so load from elsewhere on the machine hits both alike
        answers["real"].append(attempt(real, "root"))
        answers["ghost"].append(attempt(ghost, "nobody"))
    for i in range(5):  # the throttle too: same statuses, same pages, attempt by attempt
        assert answers["real"][i][:2] == answers["ghost"][i][:2]
    assert [a[0] for a in answers["real"]] == [401, 401, 401, 401, 429]
    t_real = statistics.median(a[2] for a in answers["real"][:4])
    t_ghost = statistics.median(a[2] for a in answers["ghost"][:4])
    # Within noise: an unknown name that skipped the password hash would answer ~30x faster.
    assert 1 / 3 < t_real / t_ghost < 3, (t_real, t_ghost)


def test_every_post_needs_a_csrf_token(app, admin):
    from tests.webui.test_webui_routes import page_rules

    posts = [(endpoint, url) for endpoint, url, methods in page_rules(app) if "POST" in methods]
    assert len(posts) >= 20
    for endpoint, url in posts:
        for data in ({}, {"csrf_token": "forged"}):
            r = admin.post(url, data=data)
            assert r.status_code == 400 and "security token" in r.get_data(as_text=True), (
                endpoint,
                r.status_code,
            )
    assert _signed_in(admin)  # not even logout went through


def test_totp_second_factor_for_an_admin(app, db_path):
    clock = [2_000_000_000.0]
    app.config["CLOCK"] = lambda: clock[0]
    c = _client(app, "10.0.0.2")
    assert login(c, "alice").status_code == 302
    token = csrf_token(c, "/account")
    assert c.post("/account/totp/begin", data={"csrf_token": token}).status_code == 302
    page = c.get("/account").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert "otpauth://totp/Fieldpost" in page
    bad = c.post("/account/totp/confirm", data={"csrf_token": token, "totp-code": "000000"})
    assert bad.status_code == 400 and "does not match" in bad.get_data(as_text=True)
    good = c.post(
        "/account/totp/confirm", data={"csrf_token": token, "totp-code": totp.code_at(secret, clock[0])}
    )
    assert good.status_code == 302
    assert (
        connect(db_path).execute("SELECT totp_secret FROM users WHERE username = 'alice'").fetchone()[0]
        == secret
    )

    fresh = _client(app, "10.0.0.3")
    first = login(fresh, "alice")  # the password alone is not a session
    assert first.status_code == 302 and first.headers["Location"].startswith("/login/code")
    assert fresh.get("/settings").status_code == 302
    code_token = csrf_token(fresh, "/login/code")
    assert fresh.post("/login/code", data={"csrf_token": code_token, "code": "123456"}).status_code == 401
    assert not _signed_in(fresh)
    code = totp.code_at(secret, clock[0])
    ok = fresh.post("/login/code", data={"csrf_token": code_token, "code": code})
    assert ok.status_code == 302 and _signed_in(fresh)
    # the same code seen over the shoulder does not open a second session
    onlooker = _client(app, "10.0.0.9")
    assert login(onlooker, "alice").status_code == 302
    replay = onlooker.post(
        "/login/code", data={"csrf_token": csrf_token(onlooker, "/login/code"), "code": code}
    )
    assert replay.status_code == 401 and not _signed_in(onlooker)
    clock[0] += 30  # the next code works
    assert (
        onlooker.post(
            "/login/code",
            data={"csrf_token": csrf_token(onlooker, "/login/code"), "code": totp.code_at(secret, clock[0])},
        ).status_code
        == 302
    )
    # a pending password step expires
    late = _client(app, "10.0.0.4")
    login(late, "alice")
    clock[0] += 301
    assert late.get("/login/code").headers["Location"] == "/login"


def test_only_admins_set_up_a_second_factor(app, operator):
    token = csrf_token(operator, "/account")
    assert operator.post("/account/totp/begin", data={"csrf_token": token}).status_code == 403
    assert "Second factor" not in operator.get("/account").get_data(as_text=True)


def test_a_disabled_users_sessions_end(app, admin, db_path):
    victim = _client(app, "10.0.0.5")
    make_user(db_path, "dora", "operator")
    assert login(victim, "dora").status_code == 302
    uid = accounts.find_user(connect(db_path), "dora")["id"]
    token = csrf_token(admin, "/settings")
    r = admin.post(
        f"/settings/users/{uid}",
        data={"csrf_token": token, f"u{uid}-role": "operator", f"u{uid}-disabled": "y"},
    )
    assert r.status_code == 302
    assert (
        connect(db_path)
        .execute("SELECT count(*) FROM panel_sessions WHERE user_id = ?", (uid,))
        .fetchone()[0]
        == 0
    )


def test_cli_password_reset_ends_sessions_and_reset_totp_removes_the_second_factor(app, db_path):
    from click.testing import CliRunner

    from webui.cli import standalone

    c = _client(app, "10.0.0.7")
    assert login(c, "alice").status_code == 302
    conn = connect(db_path)
    conn.execute("UPDATE users SET totp_secret = 'JBSWY3DPEHPK3PXP' WHERE username = 'alice'")
    runner = CliRunner()
    listed = runner.invoke(standalone, ["users", "list", "--db", db_path])
    assert "alice" in listed.output and "totp" in listed.output.split("alice")[1].splitlines()[0]
    reset = runner.invoke(
        standalone, ["users", "set-password", "--db", db_path, "--password", "p" * 12, "alice"]
    )
    assert reset.exit_code == 0, reset.output
    assert c.get("/account").status_code == 302  # the browser's session ended with the reset
    assert conn.execute("SELECT count(*) FROM panel_sessions").fetchone()[0] == 0
    removed = runner.invoke(standalone, ["users", "reset-totp", "--db", db_path, "alice"])
    assert removed.exit_code == 0 and "removed" in removed.output
    assert conn.execute("SELECT totp_secret FROM users WHERE username = 'alice'").fetchone()[0] is None
    assert runner.invoke(standalone, ["users", "reset-totp", "--db", db_path, "nobody"]).exit_code != 0
    assert login(_client(app, "10.0.0.8"), "alice", "p" * 12).headers["Location"] == "/"  # no code asked


def test_a_stolen_session_cannot_guess_the_password_quickly(app):
    app.config["LOGIN_MAX_FAILURES"] = 2
    c = _client(app, "10.0.0.2")
    assert login(c, "oscar").status_code == 302
    token = csrf_token(c, "/account")
    statuses = [
        c.post(
            "/account/password",
            data={
                "csrf_token": token,
                "pw-current": f"guess {i}!!!!",
                "pw-password": "n" * 12,
                "pw-confirm": "n" * 12,
            },
        ).status_code
        for i in range(5)
    ]
    assert statuses[:3] == [400, 400, 400] and statuses[3:] == [429, 429]
