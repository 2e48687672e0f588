"""Alarm notifications by webhook (HTTP POST of JSON) and e-mail (SMTP), retried with backoff.

Two steps, both driven by the daemon's timer through :meth:`Notifier.run`:

1. *plan*: every new alarm_history entry that a target wants (by severity and
   state) becomes a ``notifications`` row, in the same transaction that moves the
   ``alarm_cursors`` position on, so each state change is queued exactly once
   whichever process caused it (rule engine, panel, retention) and across restarts;
2. *deliver*: due rows are sent; a failure (no route, refused, timeout, non-2xx)
   is recorded and retried later with exponential backoff, so a site that is
   offline for days notifies when its connection comes back. After
   ``max_attempts`` a row is marked failed and an event says so.

Network I/O happens outside any database transaction.
"""

from __future__ import annotations

import json
import logging
import smtplib
import sqlite3
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from edge import alarms
from edge.errors import ValidationError
from edge.store import transaction

log = logging.getLogger("fieldpost.notify")

CURSOR = "notify"
FIRST_RUN_CATCH_UP_S = 3600.0
SEVERITY_RANK = {name: i for i, name in enumerate(alarms.SEVERITIES)}


@dataclass(frozen=True)
class Target:
    channel: str  # 'webhook' or 'email'
    target: str  # URL, or an e-mail address
    min_severity: str = "warning"
    states: tuple[str, ...] = ("raised", "cleared")
    rule: str | None = None  # only this rule's alarms (panel routes); None: every rule

    def wants(self, severity: str, state: str, rule: str | None = None) -> bool:
        if self.rule is not None and rule != self.rule:
            return False
        return state in self.states and SEVERITY_RANK[severity] >= SEVERITY_RANK[self.min_severity]


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    sender: str = "fieldpost@localhost"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout_s: float = 10.0


@dataclass(frozen=True)
class NotifyConfig:
    targets: tuple[Target, ...] = ()
    smtp: SmtpSettings | None = None
    http_timeout_s: float = 10.0
    backoff_s: float = 30.0  # first retry; doubles up to backoff_max_s
    backoff_max_s: float = 3600.0
    max_attempts: int = 200


# --------------------------------------------------------------------------- config


def parse_notify(table: Any) -> NotifyConfig:
    """Validate the config file's ``[notify]`` table; errors name ``notify.<field>``.

    [notify]
    min_severity = "warning"            # default for every target
    [[notify.webhook]]
    url = "https://example.org/hook"
    min_severity = "critical"           # optional
    states = ["raised"]                 # optional: raised, acknowledged, cleared
    [notify.email]
    to = ["ops@example.org"]
    host = "smtp.example.org"
    port = 587
    sender = "fieldpost@site.example"
    starttls = true
    username = "..."; password = "..."
    """
    if table is None:
        return NotifyConfig()
    if not isinstance(table, dict):
        raise ValidationError("notify", "must be a table")
    allowed = {
        "min_severity",
        "webhook",
        "email",
        "http_timeout_s",
        "backoff_s",
        "backoff_max_s",
        "max_attempts",
    }
    _no_unknown(table, allowed, "notify")
    default_severity = _severity(table.get("min_severity", "warning"), "notify.min_severity")
    targets: list[Target] = []
    hooks = table.get("webhook", [])
    if isinstance(hooks, dict):
        hooks = [hooks]
    if not isinstance(hooks, list):
        raise ValidationError("notify.webhook", "must be an array of tables ([[notify.webhook]])")
    for i, hook in enumerate(hooks):
        where = f"notify.webhook[{i}]"
        if not isinstance(hook, dict):
            raise ValidationError(where, "must be a table")
        _no_unknown(hook, {"url", "min_severity", "states"}, where)
        url = hook.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000:
            raise ValidationError(f"{where}.url", "must be an http:// or https:// URL")
        targets.append(
            Target(
                "webhook",
                url,
                _severity(hook.get("min_severity", default_severity), f"{where}.min_severity"),
                _states(hook.get("states", ["raised", "cleared"]), f"{where}.states"),
            )
        )
    smtp = None
    email = table.get("email")
    if email is not None:
        where = "notify.email"
        if not isinstance(email, dict):
            raise ValidationError(where, "must be a table")
        _no_unknown(
            email,
            {
                "to",
                "host",
                "port",
                "sender",
                "username",
                "password",
                "starttls",
                "timeout_s",
                "min_severity",
                "states",
            },
            where,
        )
        to = email.get("to")
        if isinstance(to, str):
            to = [to]
        if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
            raise ValidationError(f"{where}.to", "must be a list of e-mail addresses")
        host = email.get("host")
        if not isinstance(host, str) or not host:
            raise ValidationError(f"{where}.host", "required: the SMTP server")
        port = email.get("port", 25)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValidationError(f"{where}.port", "must be a port number")
        sender = email.get("sender", "fieldpost@localhost")
        if not isinstance(sender, str) or "@" not in sender:
            raise ValidationError(f"{where}.sender", "must be an e-mail address")
        starttls = email.get("starttls", False)
        if not isinstance(starttls, bool):
            raise ValidationError(f"{where}.starttls", "must be true or false")
        for key in ("username", "password"):
            if key in email and not isinstance(email[key], str):
                raise ValidationError(f"{where}.{key}", "must be text")
        smtp = SmtpSettings(
            host=host,
            port=port,
            sender=sender,
            username=email.get("username"),
            password=email.get("password"),
            starttls=starttls,
            timeout_s=_positive(email, "timeout_s", 10.0, where),
        )
        severity = _severity(email.get("min_severity", default_severity), f"{where}.min_severity")
        states = _states(email.get("states", ["raised", "cleared"]), f"{where}.states")
        targets += [Target("email", address, severity, states) for address in to]
    max_attempts = table.get("max_attempts", 200)
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValidationError("notify.max_attempts", "must be a whole number of at least 1")
    return NotifyConfig(
        targets=tuple(targets),
        smtp=smtp,
        http_timeout_s=_positive(table, "http_timeout_s", 10.0, "notify"),
        backoff_s=_positive(table, "backoff_s", 30.0, "notify"),
        backoff_max_s=_positive(table, "backoff_max_s", 3600.0, "notify"),
        max_attempts=max_attempts,
    )


def _no_unknown(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ValidationError(f"{where}.{unknown[0]}", "is not a known setting")


def _severity(value: Any, where: str) -> str:
    if value not in alarms.SEVERITIES:
        raise ValidationError(where, f"must be one of {', '.join(alarms.SEVERITIES)}")
    return value


def _states(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or any(s not in alarms.STATES for s in value):
        raise ValidationError(where, f"must be a list of {', '.join(alarms.STATES)}")
    return tuple(value)


def _positive(table: dict, key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(f"{where}.{key}", "must be a number above 0")
    return float(value)


# --------------------------------------------------------------------------- notifier


def backoff_delay(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after the ``attempts``-th failure: base, 2*base, 4*base ... capped."""
    return min(max_s, base_s * 2 ** max(0, attempts - 1))


class Notifier:
    def __init__(
        self,
        conn_factory: Callable[[], sqlite3.Connection],
        config: NotifyConfig,
        clock: Callable[[], float] = time.time,
    ):
        self._conn_factory = conn_factory
        self._config = config
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self.stats = {"queued": 0, "sent": 0, "failed_attempts": 0, "gave_up": 0}

    def run(self, now: float | None = None) -> None:
        """Queue notifications for new alarm changes, then send what is due."""
        now = self._clock() if now is None else now
        self.plan(now)
        self.deliver_due(now)

    def plan(self, now: float) -> int:
        conn = self._connection()
        with transaction(conn):
            row = conn.execute("SELECT history_id FROM alarm_cursors WHERE name = ?", (CURSOR,)).fetchone()
            if row is None:
                # First run (notifications just configured): catch up on the last hour only, so an
                # old site does not mail its whole alarm history.
                start = conn.execute(
                    "SELECT COALESCE(MAX(id), 0) FROM alarm_history WHERE at < ?",
                    (now - FIRST_RUN_CATCH_UP_S,),
                ).fetchone()[0]
                conn.execute("INSERT INTO alarm_cursors (name, history_id) VALUES (?, ?)", (CURSOR, start))
            else:
                start = row[0]
            entries = conn.execute(
                "SELECT h.id AS history_id, h.state AS new_state, h.at AS changed_at, a.* FROM alarm_history h"
                " JOIN alarms a ON a.id = h.alarm_id WHERE h.id > ? ORDER BY h.id",
                (start,),
            ).fetchall()
            queued = 0
            # The panel's targets, read each time (imported here: edge.notify_routes builds on Target).
            from edge.notify_routes import panel_targets

            targets = (*self._config.targets, *panel_targets(conn)) if entries else ()
            for entry in entries:
                alarm = alarms.Alarm.from_row(entry)
                body = alarms.outbox_body(alarm, entry["new_state"], entry["changed_at"])
                for target in targets:
                    if target.wants(alarm.severity, entry["new_state"], alarm.rule):
                        conn.execute(
                            "INSERT INTO notifications (alarm_id, channel, target, body, next_attempt_at)"
                            " VALUES (?, ?, ?, ?, ?)",
                            (alarm.id, target.channel, target.target, json.dumps(body), now),
                        )
                        queued += 1
            if entries:
                conn.execute(
                    "UPDATE alarm_cursors SET history_id = ? WHERE name = ?",
                    (entries[-1]["history_id"], CURSOR),
                )
        self.stats["queued"] += queued
        return queued

    def deliver_due(self, now: float) -> int:
        """Try every pending notification whose time has come; return how many were sent."""
        conn = self._connection()
        due = conn.execute(
            "SELECT id, channel, target, body, attempts FROM notifications"
            " WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id",
            (now,),
        ).fetchall()
        sent = 0
        for row in due:
            body = json.loads(row["body"])
            try:
                if row["channel"] == "webhook":
                    self._post(row["target"], body)
                else:
                    self._mail(row["target"], body)
            except (OSError, smtplib.SMTPException, urllib.error.URLError, ValueError) as exc:
                self._failed(conn, row, exc, now)
                continue
            with transaction(conn):
                conn.execute(
                    "UPDATE notifications SET status = 'sent', attempts = attempts + 1, last_error = NULL"
                    " WHERE id = ?",
                    (row["id"],),
                )
            sent += 1
            self.stats["sent"] += 1
            log.info("notification=sent id=%d channel=%s target=%s", row["id"], row["channel"], row["target"])
        return sent

    def send(self, channel: str, target: str, body: dict) -> None:
        """Deliver one message now, not queued (the panel's "send test"); raises what a delivery raises."""
        (self._post if channel == "webhook" else self._mail)(target, body)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _failed(self, conn: sqlite3.Connection, row: sqlite3.Row, exc: Exception, now: float) -> None:
        attempts = row["attempts"] + 1
        error = f"{type(exc).__name__}: {exc}"[:500]
        self.stats["failed_attempts"] += 1
        with transaction(conn):
            if attempts >= self._config.max_attempts:
                conn.execute(
                    "UPDATE notifications SET status = 'failed', attempts = ?, last_error = ? WHERE id = ?",
                    (attempts, error, row["id"]),
                )
                conn.execute(
                    "INSERT INTO events (at, kind, message, detail) VALUES (?, 'notification_failed', ?, ?)",
                    (
                        now,
                        f"gave up notifying {row['target']} after {attempts} attempts",
                        json.dumps({"notification": row["id"], "error": error}),
                    ),
                )
                self.stats["gave_up"] += 1
            else:
                delay = backoff_delay(attempts, self._config.backoff_s, self._config.backoff_max_s)
                conn.execute(
                    "UPDATE notifications SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                    (attempts, now + delay, error, row["id"]),
                )
        log.warning(
            "notification=failed id=%d channel=%s target=%s attempts=%d error=%s",
            row["id"],
            row["channel"],
            row["target"],
            attempts,
            error,
        )

    def _post(self, url: str, body: dict) -> None:
        data = json.dumps(body).encode()
        request = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "fieldpost"},
        )
        context = ssl.create_default_context() if url.startswith("https://") else None
        with urllib.request.urlopen(
            request, timeout=self._config.http_timeout_s, context=context
        ) as response:
            if not 200 <= response.status < 300:  # urlopen raises for 4xx/5xx; 1xx/3xx are not success either
                raise OSError(f"HTTP {response.status}")

    def _mail(self, address: str, body: dict) -> None:
        smtp = self._config.smtp
        if smtp is None:
            raise ValueError("no [notify.email] SMTP settings")
        message = EmailMessage()
        message["From"] = smtp.sender
        message["To"] = address
        message["Subject"] = f"[Fieldpost] {body['severity'].upper()} {body['rule']} {body['state']}"
        message.set_content(
            f"{body['message']}\n\nalarm {body['alarm']}, device {body['device'] or '-'}, "
            f"value {body['value']}, state {body['state']} at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(body['ts']))}\n"
        )
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
            if smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
            client.send_message(message)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._conn_factory()
        return self._conn
