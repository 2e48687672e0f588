"""The ``[notify]`` section: targets (webhook, e-mail, apprise), SMTP settings, retry policy.

Validation only, no I/O (an apprise URL is checked by apprise itself). Every error is a ValidationError naming ``notify.<key>``.

    [notify]
    min_severity = "warning"            # default for every target
    [[notify.webhook]]
    url = "https://example.org/hook"
    min_severity = "critical"           # optional
    states = ["raised"]                 # optional: raised, acknowledged, cleared
    rules = ["freezer*"]                # optional: only alarms of these rules (shell patterns)
    [notify.email]
    to = ["ops@example.org"]
    host = "smtp.example.org"
    port = 587                          # default: 587 for starttls, 465 for tls, 25 for none
    tls = "starttls"                    # starttls (default) | tls (implicit, SMTPS) | none
    ca_file = "/etc/fieldpost/smtp-ca.pem"  # optional: trust this CA (a site's own mail server)
    sender = "fieldpost@site.example"
    username = "..."; password = "..."
    [[notify.apprise]]
    name = "night-shift"                # shown in the panel and in `fieldpost notify test`
    url = "tgram://bottoken/ChatID"     # any apprise URL
    min_severity = "critical"; rules = ["freezer*"]
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field
from typing import Any

from edge import alarms
from edge.errors import ValidationError

SEVERITY_RANK = {name: i for i, name in enumerate(alarms.SEVERITIES)}
TLS_MODES = ("starttls", "tls", "none")
DEFAULT_SMTP_PORT = {"starttls": 587, "tls": 465, "none": 25}


@dataclass(frozen=True)
class Target:
    """Where one kind of alarm change goes: ``channel`` names the transport, ``target`` the address
    within it (a webhook URL, an e-mail address, an apprise target's name)."""

    channel: str  # 'webhook', 'email' or 'apprise'
    target: str
    min_severity: str = "warning"
    states: tuple[str, ...] = ("raised", "cleared")
    rules: tuple[str, ...] = ()  # shell patterns of rule names; empty: every rule

    def wants(self, severity: str, state: str, rule: str = "") -> bool:
        if state not in self.states or SEVERITY_RANK[severity] < SEVERITY_RANK[self.min_severity]:
            return False
        return not self.rules or any(fnmatch.fnmatchcase(rule, pattern) for pattern in self.rules)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    sender: str = "fieldpost@localhost"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: str = "starttls"
    ca_file: str | None = None
    timeout_s: float = 10.0


@dataclass(frozen=True)
class AppriseTarget:
    name: str
    url: str = field(repr=False)  # apprise URLs carry tokens: never logged or shown


@dataclass(frozen=True)
class NotifyConfig:
    targets: tuple[Target, ...] = ()
    smtp: SmtpSettings | None = None
    apprise: tuple[AppriseTarget, ...] = ()
    http_timeout_s: float = 10.0
    backoff_s: float = 30.0  # first retry; doubles up to backoff_max_s
    backoff_max_s: float = 3600.0
    max_attempts: int = 200

    def apprise_url(self, name: str) -> str | None:
        return next((a.url for a in self.apprise if a.name == name), None)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_notify(table: Any) -> NotifyConfig:
    """Validate the config file's ``[notify]`` table (see the module's docstring)."""
    if table is None:
        return NotifyConfig()
    if not isinstance(table, dict):
        raise ValidationError("notify", "must be a table")
    allowed = {
        "min_severity",
        "webhook",
        "email",
        "apprise",
        "http_timeout_s",
        "backoff_s",
        "backoff_max_s",
        "max_attempts",
    }
    _no_unknown(table, allowed, "notify")
    default_severity = _severity(table.get("min_severity", "warning"), "notify.min_severity")
    targets: list[Target] = []
    for i, hook in enumerate(_array(table, "webhook")):
        where = f"notify.webhook[{i}]"
        _no_unknown(hook, {"url", "min_severity", "states", "rules"}, where)
        url = hook.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000:
            raise ValidationError(f"{where}.url", "must be an http:// or https:// URL")
        targets.append(_target("webhook", url, hook, where, default_severity))
    smtp = None
    email = table.get("email")
    if email is not None:
        smtp, to = _parse_email(email)
        targets += [_target("email", address, email, "notify.email", default_severity) for address in to]
    apprise_targets: list[AppriseTarget] = []
    for i, entry in enumerate(_array(table, "apprise")):
        where = f"notify.apprise[{i}]"
        _no_unknown(entry, {"name", "url", "min_severity", "states", "rules"}, where)
        name = entry.get("name", f"apprise-{i + 1}")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise ValidationError(f"{where}.name", "must be a short text")
        if any(a.name == name for a in apprise_targets):
            raise ValidationError(f"{where}.name", f"{name!r} is used by another apprise target")
        url = entry.get("url")
        if not isinstance(url, str) or "://" not in url or len(url) > 2000:
            raise ValidationError(f"{where}.url", "must be an apprise URL such as tgram://token/chat")
        from edge.notify.apprise_transport import check_url  # imports apprise: only when used

        problem = check_url(url)
        if problem:
            raise ValidationError(f"{where}.url", problem)
        apprise_targets.append(AppriseTarget(name, url))
        targets.append(_target("apprise", name, entry, where, default_severity))
    max_attempts = table.get("max_attempts", 200)
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValidationError("notify.max_attempts", "must be a whole number of at least 1")
    return NotifyConfig(
        targets=tuple(targets),
        smtp=smtp,
        apprise=tuple(apprise_targets),
        http_timeout_s=_positive(table, "http_timeout_s", 10.0, "notify"),
        backoff_s=_positive(table, "backoff_s", 30.0, "notify"),
        backoff_max_s=_positive(table, "backoff_max_s", 3600.0, "notify"),
        max_attempts=max_attempts,
    )


def _parse_email(email: Any) -> tuple[SmtpSettings, list[str]]:
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
            "tls",
            "starttls",
            "ca_file",
            "timeout_s",
            "min_severity",
            "states",
            "rules",
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
    tls = email.get("tls")
    if "starttls" in email:  # the older boolean spelling
        if tls is not None:
            raise ValidationError(
                f"{where}.starttls", "give notify.email.tls only (starttls is its old name)"
            )
        if not isinstance(email["starttls"], bool):
            raise ValidationError(f"{where}.starttls", "must be true or false")
        tls = "starttls" if email["starttls"] else "none"
    tls = "starttls" if tls is None else tls
    if tls not in TLS_MODES:
        raise ValidationError(f"{where}.tls", f"must be one of {', '.join(TLS_MODES)}")
    port = email.get("port", DEFAULT_SMTP_PORT[tls])
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValidationError(f"{where}.port", "must be a port number")
    sender = email.get("sender", "fieldpost@localhost")
    if not isinstance(sender, str) or "@" not in sender:
        raise ValidationError(f"{where}.sender", "must be an e-mail address")
    for key in ("username", "password", "ca_file"):
        if key in email and (not isinstance(email[key], str) or not email[key]):
            raise ValidationError(f"{where}.{key}", "must be text")
    if email.get("password") and tls == "none" and not is_loopback(host):
        # The password would cross the network in clear: refuse rather than leak it.
        raise ValidationError(
            f"{where}.password",
            f'would be sent in clear to {host}: set notify.email.tls = "starttls" or "tls"',
        )
    smtp = SmtpSettings(
        host=host,
        port=port,
        sender=sender,
        username=email.get("username"),
        password=email.get("password"),
        tls=tls,
        ca_file=email.get("ca_file"),
        timeout_s=_positive(email, "timeout_s", 10.0, where),
    )
    return smtp, to


def _target(channel: str, address: str, table: dict, where: str, default_severity: str) -> Target:
    return Target(
        channel,
        address,
        _severity(table.get("min_severity", default_severity), f"{where}.min_severity"),
        _states(table.get("states", ["raised", "cleared"]), f"{where}.states"),
        _rules(table.get("rules", []), f"{where}.rules"),
    )


def _array(table: dict, key: str) -> list[dict]:
    entries = table.get(key, [])
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        raise ValidationError(f"notify.{key}", f"must be an array of tables ([[notify.{key}]])")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValidationError(f"notify.{key}[{i}]", "must be a table")
    return entries


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


def _rules(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(r, str) and r for r in value):
        raise ValidationError(where, "must be a list of rule names (shell patterns such as freezer*)")
    return tuple(value)


def _positive(table: dict, key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValidationError(f"{where}.{key}", "must be a number above 0")
    return float(value)
