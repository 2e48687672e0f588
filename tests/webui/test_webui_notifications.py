"""Notification targets made in the panel, routed per rule and severity, delivered by the edge's
notifier to a real HTTP server on loopback; "send test"; the delivery history; rows of a kind the
panel does not know are shown and skipped, never delivered wrongly."""

from __future__ import annotations

import json
import time

import pytest

from edge import alarms
from edge.notify import Notifier, NotifyConfig
from edge.store import connect
from tests.rules.test_notify import WebhookServer, free_port
from tests.webui.helpers import csrf_token


@pytest.fixture
def hook():
    server = WebhookServer(free_port())
    yield server
    server.stop()


def _add(admin, token, **fields):
    data = {"csrf_token": token, "kind": "webhook", "min_severity": "warning", "rule": "", **fields}
    return admin.post("/notifications/targets", data=data)


def test_routes_per_rule_and_severity_reach_the_webhook(app, admin, db_path, hook):
    port = hook.server.server_address[1]
    token = csrf_token(admin, "/notifications")
    assert (
        _add(
            admin,
            token,
            name="freezer ops",
            destination=f"http://127.0.0.1:{port}/freezer",
            rule="freezer",
            min_severity="critical",
        ).status_code
        == 302
    )
    assert (
        _add(admin, token, name="all warnings", destination=f"http://127.0.0.1:{port}/all").status_code == 302
    )
    conn = connect(db_path)
    t = time.time()
    alarms.raise_alarm(
        conn, rule="freezer", device_id=None, severity="critical", message="too warm", value=9.5, now=t
    )
    alarms.raise_alarm(
        conn, rule="freezer", device_id=None, severity="warning", message="warming", value=6.0, now=t
    )
    alarms.raise_alarm(
        conn, rule="door", device_id=None, severity="critical", message="door open", value=None, now=t
    )
    alarms.raise_alarm(
        conn, rule="light", device_id=None, severity="info", message="light on", value=None, now=t
    )
    notifier = Notifier(lambda: connect(db_path), NotifyConfig())
    notifier.run(now=t + 1)
    got = sorted((path, body["rule"], body["severity"]) for path, _ctype, body in hook.received)
    assert got == [
        ("/all", "door", "critical"),
        ("/all", "freezer", "critical"),
        ("/all", "freezer", "warning"),
        ("/freezer", "freezer", "critical"),  # not the door's critical alarm, nor the freezer's warning
    ]
    page = admin.get("/notifications").get_data(as_text=True)
    assert page.count('class="badge badge-ok">sent<') == 4
    notifier.close()


def test_send_test_and_history_of_a_failure(app, admin, db_path, hook):
    port = hook.server.server_address[1]
    token = csrf_token(admin, "/notifications")
    _add(admin, token, name="ops", destination=f"http://127.0.0.1:{port}/ops")
    target_id = connect(db_path).execute("SELECT id FROM notify_targets").fetchone()[0]
    r = admin.post(f"/notifications/targets/{target_id}/test", data={"csrf_token": token})
    assert r.status_code == 302
    assert [body["rule"] for _p, _c, body in hook.received] == ["notification-test"]
    assert "Test to ops: delivered." in admin.get("/notifications").get_data(as_text=True)
    # a target nobody listens on: the test says why; a real alarm's failure shows in the history
    dead = free_port()
    _add(admin, token, name="dead", destination=f"http://127.0.0.1:{dead}/x")
    dead_id = connect(db_path).execute("SELECT id FROM notify_targets WHERE name = 'dead'").fetchone()[0]
    admin.post(f"/notifications/targets/{dead_id}/test", data={"csrf_token": token})
    assert f"Test to dead: http://127.0.0.1:{dead}/x: " in admin.get("/notifications").get_data(as_text=True)
    conn = connect(db_path)
    alarms.raise_alarm(
        conn, rule="tank", device_id=None, severity="critical", message="low", value=1.0, now=time.time()
    )
    notifier = Notifier(lambda: connect(db_path), NotifyConfig())
    notifier.run(now=time.time() + 1)
    history = admin.get("/notifications").get_data(as_text=True)
    row = history.split('id="deliveries"')[1]
    assert f"127.0.0.1:{dead}" in row and "Connection refused" in row and "pending" in row
    actions = [
        a[0] for a in conn.execute("SELECT action FROM audit_log WHERE action LIKE 'notify.%' ORDER BY id")
    ]
    assert actions == ["notify.target_add", "notify.test", "notify.target_add", "notify.test"]
    notifier.close()


def test_target_fields_are_checked(app, admin, db_path):
    token = csrf_token(admin, "/notifications")
    for destination, message in (
        ("ftp://x.example/", "http:// or https://"),
        ('https://x.example/"><script>', "without spaces, quotes or"),
        ("https://-x-.example/", "not a host name"),
        ("https://x.example:99999/", "1 to 65535"),
    ):
        r = _add(admin, token, name="t", destination=destination)
        assert r.status_code == 400 and message in r.get_data(as_text=True), destination
    r = _add(admin, token, name="m", kind="email", destination="not an address")
    assert r.status_code == 400 and "e-mail address like" in r.get_data(as_text=True)
    assert _add(admin, token, name="m", kind="email", destination="ops@example.org").status_code == 302
    assert (
        _add(admin, token, name="m", kind="email", destination="x@example.org").status_code == 400
    )  # name taken
    assert _add(admin, token, name="x", kind="pager", destination="555").status_code == 400
    assert connect(db_path).execute("SELECT count(*) FROM notify_targets").fetchone()[0] == 1


def test_a_kind_the_panel_does_not_know_is_listed_and_skipped(app, admin, db_path, hook):
    conn = connect(db_path)
    conn.execute(
        "INSERT INTO notify_targets (name, kind, settings, enabled, created_at, updated_at)"
        " VALUES ('chat', 'apprise', ?, 1, 0, 0)",
        (json.dumps({"urls": ["tgram://token/chat"]}),),
    )
    conn.execute("INSERT INTO notify_routes (target_id, rule, min_severity) VALUES (1, NULL, 'info')")
    page = admin.get("/notifications").get_data(as_text=True)
    assert "kind apprise" in page and "tgram://token/chat" in page
    alarms.raise_alarm(
        conn, rule="door", device_id=None, severity="critical", message="open", value=None, now=time.time()
    )
    notifier = Notifier(lambda: connect(db_path), NotifyConfig())
    notifier.run(now=time.time() + 1)
    assert conn.execute("SELECT count(*) FROM notifications").fetchone()[0] == 0
    token = csrf_token(admin, "/notifications")
    admin.post("/notifications/targets/1/test", data={"csrf_token": token})
    assert "cannot send a test for kind" in admin.get("/notifications").get_data(as_text=True)
    notifier.close()


def test_only_admins(app, operator):
    assert operator.get("/notifications").status_code == 403


def test_what_is_typed_is_shown_escaped(app, admin, db_path):
    token = csrf_token(admin, "/notifications")
    assert _add(admin, token, name="ops", destination="https://hooks.example/x").status_code == 302
    target_id = connect(db_path).execute("SELECT id FROM notify_targets").fetchone()[0]
    payload = '<script>alert("r")</script>'
    r = admin.post(
        f"/notifications/targets/{target_id}/routes",
        data={"csrf_token": token, "rule": payload, "min_severity": "info"},
    )
    assert r.status_code == 302
    page = admin.get("/notifications").get_data(as_text=True)
    assert payload not in page and "&lt;script&gt;alert(&#34;r&#34;)&lt;/script&gt;" in page
    bad = _add(admin, token, name=payload, destination="https://hooks.example/y")
    assert bad.status_code == 400 and payload not in bad.get_data(as_text=True)


def test_send_test_by_email_uses_the_daemons_smtp_settings(app, admin, db_path):
    from aiosmtpd.controller import Controller

    from edge.notify import parse_notify
    from tests.rules.test_notify import Mailbox

    token = csrf_token(admin, "/notifications")
    assert (
        _add(admin, token, name="ops mail", kind="email", destination="ops@site.example").status_code == 302
    )
    target_id = connect(db_path).execute("SELECT id FROM notify_targets").fetchone()[0]
    without = admin.post(f"/notifications/targets/{target_id}/test", data={"csrf_token": token})
    assert without.status_code == 302
    assert "no [notify.email] SMTP settings" in admin.get("/notifications").get_data(as_text=True)
    port = free_port()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        app.extensions["fieldpost_notify_config"] = parse_notify(
            {
                "email": {
                    "host": "127.0.0.1",
                    "port": port,
                    "to": ["x@site.example"],
                    "sender": "edge@site.example",
                    "tls": "none",  # the test's SMTP server on loopback speaks no TLS
                }
            }
        )
        admin.post(f"/notifications/targets/{target_id}/test", data={"csrf_token": token})
    finally:
        smtp.stop()
    assert "Test to ops mail: delivered." in admin.get("/notifications").get_data(as_text=True)
    rcpts, mail = mailbox.messages[0]
    assert rcpts == ["ops@site.example"] and "notification-test" in mail["Subject"]
