"""apprise as a transport of the durable queue: delivery to a local JSON endpoint, retries then a dead
letter for a target that is down, routing by rule and severity, `fieldpost notify test`, bad URLs, and
a notifier stuck on a dead target that does not hold up the ingest writer."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import pytest
import trustme
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from edge import alarms
from edge import config as config_mod
from edge.cli import main
from edge.daemon import Daemon
from edge.errors import ConfigError, ValidationError
from edge.notify import Notifier, parse_notify
from edge.rules.service import load_config
from edge.store import connect
from tests.conftest import wait_until
from tests.rules.test_notify import Mailbox, WebhookServer, free_port, raise_one
from tests.rules.test_notify_smtp import PASSWORD, USER, Logins

T0 = 3_000_000.0


@pytest.fixture
def hook():
    server = WebhookServer(free_port())
    yield server
    server.stop()


def rows(conn):
    return [
        tuple(r)
        for r in conn.execute("SELECT channel, target, status, attempts FROM notifications ORDER BY id")
    ]


def test_apprise_delivers_to_a_local_json_endpoint_through_the_queue(db_path, conn, hook):
    port = hook.server.server_address[1]
    config = parse_notify({"apprise": [{"name": "ops", "url": f"json://127.0.0.1:{port}/alarms"}]})
    notifier = Notifier(lambda: connect(db_path), config)
    try:
        notifier.run(T0)
        raise_one(conn, T0 + 1)
        notifier.run(T0 + 1)
    finally:
        notifier.close()
    assert rows(conn) == [("apprise", "ops", "sent", 1)]
    path, content_type, body = hook.received[0]
    assert path == "/alarms" and content_type.startswith("application/json")
    assert body["title"] == "[Fieldpost] CRITICAL freezer raised"
    assert "too warm" in body["message"] and body["type"] == "failure"
    # the queue keeps the target's name, never its URL (which may carry a token)
    assert "json://" not in json.dumps([tuple(r) for r in conn.execute("SELECT * FROM notifications")])


def test_a_dead_apprise_target_is_retried_then_dead_lettered_and_the_others_still_get_through(
    db_path, conn, hook
):
    port = hook.server.server_address[1]
    config = parse_notify(
        {
            "backoff_s": 10,
            "max_attempts": 3,
            "apprise": [
                {"name": "dead", "url": f"json://127.0.0.1:{free_port()}/"},
                {"name": "alive", "url": f"json://127.0.0.1:{port}/"},
            ],
        }
    )
    notifier = Notifier(lambda: connect(db_path), config)
    try:
        notifier.run(T0)
        raise_one(conn, T0)
        for step in (0, 5, 10, 35, 100):  # attempts at 0, 10 (+10), 30 (+20): then given up
            notifier.run(T0 + step)
    finally:
        notifier.close()
    assert rows(conn) == [("apprise", "dead", "failed", 3), ("apprise", "alive", "sent", 1)]
    error = conn.execute("SELECT last_error FROM notifications WHERE target = 'dead'").fetchone()[0]
    assert error.startswith("dead: ") and "127.0.0.1" in error
    event = conn.execute("SELECT kind, message FROM events").fetchone()
    assert tuple(event) == ("notification_failed", "gave up notifying dead after 3 attempts")
    assert len(hook.received) == 1


def test_routing_by_rule_and_severity(db_path, conn):
    config = parse_notify(
        {
            "min_severity": "info",
            "webhook": [
                {"url": "http://127.0.0.1:9/freezers", "rules": ["freezer*"]},
                {"url": "http://127.0.0.1:9/pager", "min_severity": "critical", "states": ["raised"]},
            ],
        }
    )
    notifier = Notifier(lambda: connect(db_path), config)
    try:
        notifier.plan(T0)
        for rule, severity in [("freezer-2", "warning"), ("door", "critical"), ("door", "info")]:
            alarms.raise_alarm(conn, rule=rule, device_id=None, severity=severity, message="m", now=T0 + 1)
        notifier.plan(T0 + 1)
    finally:
        notifier.close()
    queued = conn.execute(
        "SELECT a.rule, a.severity, n.target FROM notifications n JOIN alarms a ON a.id = n.alarm_id ORDER BY n.id"
    ).fetchall()
    assert [tuple(r) for r in queued] == [
        ("freezer-2", "warning", "http://127.0.0.1:9/freezers"),
        ("door", "critical", "http://127.0.0.1:9/pager"),
    ]


def test_an_invalid_apprise_url_is_a_config_error_naming_it():
    with pytest.raises(ValidationError) as err:
        parse_notify({"apprise": [{"name": "chat", "url": "slakc://T000/B000/XXXX"}]})
    assert err.value.field == "notify.apprise[0].url" and "slakc://T000/B000/XXXX" in str(err.value)
    with pytest.raises(
        ConfigError, match=r"notify\.apprise\[0\]\.url: 'tgram://' is not a valid apprise URL"
    ):
        load_config({"notify": {"apprise": [{"url": "tgram://"}]}})


def test_notify_test_command_reaches_apprise_and_starttls_email(tmp_path, hook):
    authority = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    mailbox, logins = Mailbox(), Logins()
    smtp = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=logins,
        tls_context=server_context,
        require_starttls=True,
    )
    smtp.start()
    try:
        port = hook.server.server_address[1]
        dead = free_port()
        (tmp_path / "fieldpost.toml").write_text(
            f"""
[edge]
db = "{tmp_path / "fp.db"}"
[notify]
[notify.email]
to = ["ops@site.example"]
host = "127.0.0.1"
port = {smtp.port}
username = "{USER}"
password = "{PASSWORD}"
ca_file = "{ca_file}"
[[notify.apprise]]
name = "team-chat"
url = "json://127.0.0.1:{port}/"
[[notify.apprise]]
name = "gone"
url = "json://127.0.0.1:{dead}/"
"""
        )
        args = ["--config", str(tmp_path / "fieldpost.toml"), "notify"]
        listed = CliRunner().invoke(main, [*args, "list", "--json"])
        assert listed.exit_code == 0, listed.output
        assert [(t["channel"], t["target"], t.get("service")) for t in json.loads(listed.output)] == [
            ("email", "ops@site.example", None),
            ("apprise", "team-chat", "json"),
            ("apprise", "gone", "json"),
        ]
        assert "json://" not in listed.output  # an apprise URL may carry a token: never shown

        result = CliRunner().invoke(main, [*args, "test"])
        assert result.exit_code == 1  # one target is down
        lines = result.output.splitlines()
        assert lines[0] == "ok     email    ops@site.example"
        assert lines[1] == "ok     apprise  team-chat"
        assert lines[2].startswith("FAILED apprise  gone: gone: ")
        assert mailbox.messages[0][1]["Subject"] == "[Fieldpost] test notification"
        assert hook.received[0][2]["title"] == "[Fieldpost] test notification"

        only = CliRunner().invoke(main, [*args, "test", "--target", "team-chat", "--json"])
        assert only.exit_code == 0 and [o["target"] for o in json.loads(only.output)] == ["team-chat"]
        unknown = CliRunner().invoke(main, [*args, "test", "--target", "nobody"])
        assert unknown.exit_code != 0 and "nobody: no such notification target" in unknown.output
    finally:
        smtp.stop()


class BlackHole:
    """Accepts connections and never answers: a target that hangs until the client's time-out."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_a_hanging_target_never_holds_up_the_ingest_writer(tmp_path):
    hole = BlackHole()
    db = tmp_path / "fp.db"
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db)},
            "link": {"discover": False},
            "http": {"enabled": False},
            "notify": {
                "http_timeout_s": 3,
                "apprise": [{"name": "hangs", "url": f"json://127.0.0.1:{hole.port}/"}],
            },
        }
    )
    daemon = Daemon(cfg, attach_points=("edge.rules.service:attach",)).start()
    try:
        done = threading.Event()
        daemon.ingest.submit_call(
            lambda conn, now: alarms.raise_alarm(
                conn, rule="freezer", device_id=None, severity="critical", message="warm", now=now
            ),
            reply=done.set,
        )
        assert done.wait(5)
        wait_until(lambda: hole.accepted, timeout=15, what="the notifier to connect to the hanging target")
        # the notifier thread now waits on the target; the writer keeps committing meanwhile
        for _ in range(20):
            committed = threading.Event()
            started = time.monotonic()
            daemon.ingest.submit_call(
                lambda conn, now: conn.execute(
                    "INSERT INTO events (at, kind, message) VALUES (?, 'probe', 'writer alive')", (now,)
                ),
                reply=committed.set,
            )
            assert committed.wait(2), "the ingest writer was held up"
            assert time.monotonic() - started < 1.0
        assert hole.accepted  # still hanging: the writes above happened during the wait
    finally:
        daemon.stop()
        hole.close()
    conn = connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM events WHERE kind = 'probe'").fetchone()[0] == 20
    finally:
        conn.close()


def test_dead_letters_are_listed_and_can_be_queued_again(db_path, conn):
    port = free_port()
    config = parse_notify(
        {"max_attempts": 1, "apprise": [{"name": "ops", "url": f"json://127.0.0.1:{port}/"}]}
    )
    notifier = Notifier(lambda: connect(db_path), config)
    try:
        notifier.run(T0)
        raise_one(conn, T0)
        notifier.run(T0)  # down: one attempt, then a dead letter
        args = ["--db", str(db_path), "notify"]
        listed = CliRunner().invoke(main, [*args, "queue", "--status", "failed", "--json"])
        assert listed.exit_code == 0, listed.output
        [dead] = json.loads(listed.output)
        assert (dead["target"], dead["status"], dead["attempts"], dead["rule"]) == (
            "ops",
            "failed",
            1,
            "freezer",
        )
        assert dead["last_error"].startswith("ops: ")

        hook = WebhookServer(port)  # the target is back
        try:
            again = CliRunner().invoke(main, [*args, "retry"])
            assert again.exit_code == 0 and "1 notification(s) queued again" in again.output
            notifier.run(time.time())
            assert rows(conn) == [("apprise", "ops", "sent", 1)]
            assert len(hook.received) == 1
        finally:
            hook.stop()
        text = CliRunner().invoke(main, [*args, "queue"]).output
        assert " sent " in text and "ops" in text
    finally:
        notifier.close()
