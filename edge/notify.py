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
from edge.config.schema import SettingError, build, setting, table, tables
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

    def wants(self, severity: str, state: str) -> bool:
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


def _severity_or_inherit(value: str) -> str | None:
    if value == "" or value in alarms.SEVERITIES:
        return None
    return f"must be one of {', '.join(alarms.SEVERITIES)}"


def _states_ok(value: list[str]) -> str | None:
    if value and all(s in alarms.STATES for s in value):
        return None
    return f"must be a list of {', '.join(alarms.STATES)}"


def _http_url(value: str) -> str | None:
    if value.startswith(("http://", "https://")) and len(value) <= 2000:
        return None
    return "must be an http:// or https:// URL"


def _addresses(value: list[str]) -> str | None:
    return None if value and all("@" in a for a in value) else "must be a list of e-mail addresses"


@dataclass(frozen=True)
class WebhookSection:
    url: str | None = setting(
        None, doc="Where alarm changes are POSTed as JSON", check=_http_url, required=True
    )
    min_severity: str = setting(
        "", doc="Least severity sent (empty: notify.min_severity)", check=_severity_or_inherit
    )
    states: list[str] = setting(["raised", "cleared"], doc="Alarm states sent", check=_states_ok)


@dataclass(frozen=True)
class EmailSection:
    to: list[str] = setting([], doc="Recipients", check=_addresses, required=True, one_or_many=True)
    host: str | None = setting(None, doc="SMTP server", required=True)
    port: int = setting(25, doc="SMTP port", lo=1, hi=65535)
    sender: str = setting(
        "fieldpost@localhost",
        doc="From address",
        check=lambda v: None if "@" in v else "must be an e-mail address",
    )
    username: str | None = setting(None, doc="SMTP user name")
    password: str | None = setting(None, doc="SMTP password", secret=True)
    starttls: bool = setting(False, doc="Upgrade the connection with STARTTLS")
    timeout_s: float = setting(10.0, doc="SMTP timeout", unit="s", lo=0.001, hi=600)
    min_severity: str = setting(
        "", doc="Least severity mailed (empty: notify.min_severity)", check=_severity_or_inherit
    )
    states: list[str] = setting(["raised", "cleared"], doc="Alarm states mailed", check=_states_ok)


@dataclass(frozen=True)
class NotifySection:
    """Alarm notifications by webhook and e-mail (docs/rules.md).

    :meth:`config` is what the notifier runs.
    """

    min_severity: str = setting(
        "warning", doc="Least severity notified (default for every target)", choices=alarms.SEVERITIES
    )
    http_timeout_s: float = setting(10.0, doc="Webhook timeout", unit="s", lo=0.001, hi=600)
    backoff_s: float = setting(
        30.0, doc="First retry delay; doubles up to backoff_max_s", unit="s", lo=0.001, hi=86400
    )
    backoff_max_s: float = setting(3600.0, doc="Longest retry delay", unit="s", lo=0.001, hi=30 * 86400)
    max_attempts: int = setting(
        200, doc="Attempts per notification before it is marked failed", lo=1, hi=10**6
    )
    webhook: tuple[WebhookSection, ...] = tables(WebhookSection, doc="Webhooks ([[notify.webhook]])")
    email: EmailSection | None = table(EmailSection, doc="E-mail by SMTP", optional=True)

    def config(self) -> NotifyConfig:
        targets = [
            Target("webhook", h.url or "", h.min_severity or self.min_severity, tuple(h.states))
            for h in self.webhook
        ]
        smtp = None
        if self.email is not None:
            e = self.email
            smtp = SmtpSettings(
                e.host or "", e.port, e.sender, e.username, e.password, e.starttls, e.timeout_s
            )
            severity = e.min_severity or self.min_severity
            targets += [Target("email", address, severity, tuple(e.states)) for address in e.to]
        return NotifyConfig(
            targets=tuple(targets),
            smtp=smtp,
            http_timeout_s=self.http_timeout_s,
            backoff_s=self.backoff_s,
            backoff_max_s=self.backoff_max_s,
            max_attempts=self.max_attempts,
        )


def parse_notify(table_: Any) -> NotifyConfig:
    """Validate the config file's ``[notify]`` table; a ValidationError names ``notify.<field>``."""
    try:
        return build(NotifySection, table_, "notify").config()
    except SettingError as exc:
        raise ValidationError(exc.key, exc.why) from None


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
            for entry in entries:
                alarm = alarms.Alarm.from_row(entry)
                body = alarms.outbox_body(alarm, entry["new_state"], entry["changed_at"])
                for target in self._config.targets:
                    if target.wants(alarm.severity, entry["new_state"]):
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
