"""Notifications to a real HTTP server and a real SMTP server (aiosmtpd) on loopback, with retries."""

import json
import socket
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from edge import alarms
from edge.errors import ValidationError
from edge.notify import Notifier, backoff_delay, parse_notify
from edge.store import connect

T0 = 3_000_000.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebhookServer:
    """A local HTTP endpoint that records every JSON body POSTed to it."""

    def __init__(self, port):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                received.append(
                    (self.path, self.headers["Content-Type"], json.loads(self.rfile.read(length)))
                )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def servers():
    started = []
    yield started
    for stop in started:
        stop()


def raise_one(conn, now, severity="critical"):
    return alarms.raise_alarm(
        conn,
        rule="freezer",
        device_id="a1b2c3d4e5f60708",
        severity=severity,
        message="too warm",
        value=9.5,
        now=now,
    )


def test_webhook_and_email_delivered_and_retried_while_targets_are_down(db_path, conn, servers):
    http_port, smtp_port = free_port(), free_port()
    config = parse_notify(
        {
            "min_severity": "warning",
            "backoff_s": 30,
            "webhook": [{"url": f"http://127.0.0.1:{http_port}/hook"}],
            "email": {
                "to": ["ops@site.example"],
                "host": "127.0.0.1",
                "port": smtp_port,
                "tls": "none",  # a loopback server without TLS; tests/rules/test_notify_smtp.py has TLS
                "timeout_s": 5,
            },
        }
    )
    notifier = Notifier(lambda: connect(db_path), config)
    try:
        notifier.run(T0)  # first run: sets the cursor
        alarm_id = raise_one(conn, T0 + 1)
        raise_one(conn, T0 + 2, severity="info")  # below min_severity: no notification
        notifier.run(T0 + 2)  # both targets are down
        rows = conn.execute(
            "SELECT channel, status, attempts, next_attempt_at, last_error FROM notifications"
        ).fetchall()
        assert [(r["channel"], r["status"], r["attempts"]) for r in rows] == [
            ("webhook", "pending", 1),
            ("email", "pending", 1),
        ]
        assert all(r["next_attempt_at"] == T0 + 2 + 30 and r["last_error"] for r in rows)

        hook = WebhookServer(http_port)
        servers.append(hook.stop)
        mailbox = Mailbox()
        smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
        smtp.start()
        servers.append(smtp.stop)

        notifier.run(T0 + 20)  # backoff not over yet: no attempt
        assert hook.received == [] and mailbox.messages == []
        notifier.run(T0 + 40)
        assert [tuple(r) for r in conn.execute("SELECT status, attempts FROM notifications")] == [
            ("sent", 2)
        ] * 2

        path, content_type, body = hook.received[0]
        assert (path, content_type) == ("/hook", "application/json")
        assert body["alarm"] == alarm_id and body["state"] == "raised" and body["severity"] == "critical"
        rcpts, mail = mailbox.messages[0]
        assert rcpts == ["ops@site.example"]
        assert mail["Subject"] == "[Fieldpost] CRITICAL freezer raised"
        assert "too warm" in mail.get_payload()

        alarms.clear(conn, alarm_id, now=T0 + 50)
        notifier.run(T0 + 50)
        assert [b["state"] for _, _, b in hook.received] == ["raised", "cleared"]
        assert len(mailbox.messages) == 2
    finally:
        notifier.close()


def test_each_change_is_queued_once_across_restarts(db_path, conn):
    config = parse_notify({"webhook": [{"url": f"http://127.0.0.1:{free_port()}/", "states": ["raised"]}]})
    first = Notifier(lambda: connect(db_path), config)
    first.run(T0)
    raise_one(conn, T0 + 1)
    first.plan(T0 + 1)
    first.close()
    second = Notifier(lambda: connect(db_path), config)
    second.plan(T0 + 2)
    raise_one(conn, T0 + 3)
    second.plan(T0 + 3)
    second.close()
    assert conn.execute("SELECT COUNT(*) FROM notifications").fetchone()[0] == 2


def test_gives_up_after_max_attempts_with_an_event(db_path, conn):
    config = parse_notify(
        {"max_attempts": 2, "backoff_s": 1, "webhook": [{"url": f"http://127.0.0.1:{free_port()}/"}]}
    )
    notifier = Notifier(lambda: connect(db_path), config)
    try:
        notifier.run(T0)
        raise_one(conn, T0)
        notifier.run(T0)
        notifier.run(T0 + 10)
        notifier.run(T0 + 100)
        assert tuple(conn.execute("SELECT status, attempts FROM notifications").fetchone()) == ("failed", 2)
        assert conn.execute("SELECT kind FROM events").fetchone()[0] == "notification_failed"
    finally:
        notifier.close()


def test_backoff_doubles_up_to_a_cap():
    assert [backoff_delay(n, 30, 600) for n in (1, 2, 3, 4, 5, 6)] == [30, 60, 120, 240, 480, 600]


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"webhook": [{"url": "file:///etc/passwd"}]}, "notify.webhook[0].url"),
        ({"webhook": [{"url": "http://x/", "min_severity": "loud"}]}, "notify.webhook[0].min_severity"),
        ({"webhook": [{"url": "http://x/", "states": ["exploded"]}]}, "notify.webhook[0].states"),
        ({"email": {"to": ["nobody"], "host": "h"}}, "notify.email.to"),
        ({"email": {"to": ["a@b"], "port": 25}}, "notify.email.host"),
        ({"email": {"to": ["a@b"], "host": "h", "port": 70000}}, "notify.email.port"),
        ({"pager": {}}, "notify.pager"),
        ({"backoff_s": 0}, "notify.backoff_s"),
    ],
)
def test_bad_notify_config_names_the_field(table, field):
    with pytest.raises(ValidationError) as err:
        parse_notify(table)
    assert err.value.field == field
