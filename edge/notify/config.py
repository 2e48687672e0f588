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
from dataclasses import dataclass, field
from typing import Any

from edge import alarms
from edge.config.core import is_loopback
from edge.config.schema import SettingError, build, setting, table, tables
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


def _severity_or_inherit(value: str) -> str | None:
    if value == "" or value in alarms.SEVERITIES:
        return None
    return f"must be one of {', '.join(alarms.SEVERITIES)}"


def _states_ok(value: list[str]) -> str | None:
    if value and all(s in alarms.STATES for s in value):
        return None
    return f"must be a list of {', '.join(alarms.STATES)}"


def _rule_patterns(value: list[str]) -> str | None:
    return None if all(value) else "must be a list of rule names (shell patterns such as freezer*)"


def _http_url(value: str) -> str | None:
    if value.startswith(("http://", "https://")) and len(value) <= 2000:
        return None
    return "must be an http:// or https:// URL"


def _addresses(value: list[str]) -> str | None:
    return None if value and all("@" in a for a in value) else "must be a list of e-mail addresses"


def _apprise_url(value: str) -> str | None:
    if "://" not in value or len(value) > 2000:
        return "must be an apprise URL such as tgram://token/chat"
    from edge.notify.apprise_transport import check_url  # imports apprise: only when used

    return check_url(value)


def _text(value: str | None) -> str | None:
    return None if value is None or value else "must be text"


# The routing every target has: which alarm changes go to it.
def min_severity_setting(verb: str) -> Any:
    return setting("", doc=f"Least severity {verb} (empty: notify.min_severity)", check=_severity_or_inherit)


def states_setting(verb: str) -> Any:
    return setting(["raised", "cleared"], doc=f"Alarm states {verb}", check=_states_ok)


def rules_setting() -> Any:
    return setting([], doc="Only alarms of these rules (shell patterns); empty: all", check=_rule_patterns)


@dataclass(frozen=True)
class WebhookSection:
    url: str | None = setting(
        None, doc="Where alarm changes are POSTed as JSON", check=_http_url, required=True
    )
    min_severity: str = min_severity_setting("sent")
    states: list[str] = states_setting("sent")
    rules: list[str] = rules_setting()


@dataclass(frozen=True)
class EmailSection:
    to: list[str] = setting([], doc="Recipients", check=_addresses, required=True, one_or_many=True)
    host: str | None = setting(None, doc="SMTP server", required=True)
    port: int | None = setting(
        None, doc="SMTP port (unset: 587 for starttls, 465 for tls, 25 for none)", lo=1, hi=65535
    )
    tls: str | None = setting(
        None, doc="starttls (default), tls (implicit, SMTPS) or none", choices=TLS_MODES
    )
    starttls: bool | None = setting(None, doc="The older spelling of tls: true = starttls, false = none")
    ca_file: str | None = setting(None, doc="Trust this CA (PEM; a site's own mail server)", check=_text)
    sender: str = setting(
        "fieldpost@localhost",
        doc="From address",
        check=lambda v: None if "@" in v else "must be an e-mail address",
    )
    username: str | None = setting(None, doc="SMTP user name", check=_text)
    password: str | None = setting(None, doc="SMTP password", secret=True, check=_text)
    timeout_s: float = setting(10.0, doc="SMTP timeout", unit="s", lo=0.001, hi=600)
    min_severity: str = min_severity_setting("mailed")
    states: list[str] = states_setting("mailed")
    rules: list[str] = rules_setting()

    @property
    def tls_mode(self) -> str:
        if self.tls is not None:
            return self.tls
        return "none" if self.starttls is False else "starttls"

    def validate(self) -> None:
        if self.starttls is not None and self.tls is not None:
            raise SettingError(
                "notify.email.starttls", "give notify.email.tls only (starttls is its old name)"
            )
        if self.password and self.tls_mode == "none" and not is_loopback(self.host or ""):
            # The password would cross the network in clear: refuse rather than leak it.
            raise SettingError(
                "notify.email.password",
                f'would be sent in clear to {self.host}: set notify.email.tls = "starttls" or "tls"',
            )


@dataclass(frozen=True)
class AppriseSection:
    name: str = setting("", doc="Shown in the panel and in `fieldpost notify test` (empty: apprise-<n>)")
    url: str | None = setting(
        None,
        doc="Any apprise URL (tgram://, slack://, ntfy:// ...); it holds tokens",
        secret=True,
        check=_apprise_url,
        required=True,
    )
    min_severity: str = min_severity_setting("sent")
    states: list[str] = states_setting("sent")
    rules: list[str] = rules_setting()


@dataclass(frozen=True)
class NotifySection:
    """Alarm notifications by webhook, e-mail and apprise (docs/services.md, docs/rules.md).

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
    apprise: tuple[AppriseSection, ...] = tables(AppriseSection, doc="Apprise targets ([[notify.apprise]])")

    def validate(self) -> None:
        seen: set[str] = set()
        for i, entry in enumerate(self.apprise):
            name = entry.name or f"apprise-{i + 1}"
            if len(name) > 64:
                raise SettingError(f"notify.apprise[{i}].name", "must be a short text")
            if name in seen:
                raise SettingError(f"notify.apprise[{i}].name", f"{name!r} is used by another apprise target")
            seen.add(name)

    def _target(self, channel: str, address: str, entry: Any) -> Target:
        return Target(
            channel, address, entry.min_severity or self.min_severity, tuple(entry.states), tuple(entry.rules)
        )

    def config(self) -> NotifyConfig:
        targets = [self._target("webhook", h.url or "", h) for h in self.webhook]
        smtp = None
        if self.email is not None:
            e = self.email
            mode = e.tls_mode
            smtp = SmtpSettings(
                host=e.host or "",
                port=e.port or DEFAULT_SMTP_PORT[mode],
                sender=e.sender,
                username=e.username,
                password=e.password,
                tls=mode,
                ca_file=e.ca_file,
                timeout_s=e.timeout_s,
            )
            targets += [self._target("email", address, e) for address in e.to]
        apprise_targets = []
        for i, entry in enumerate(self.apprise):
            name = entry.name or f"apprise-{i + 1}"
            apprise_targets.append(AppriseTarget(name, entry.url or ""))
            targets.append(self._target("apprise", name, entry))
        return NotifyConfig(
            targets=tuple(targets),
            smtp=smtp,
            apprise=tuple(apprise_targets),
            http_timeout_s=self.http_timeout_s,
            backoff_s=self.backoff_s,
            backoff_max_s=self.backoff_max_s,
            max_attempts=self.max_attempts,
        )


def parse_notify(table_: Any) -> NotifyConfig:
    """Validate the config file's ``[notify]`` table (see the module's docstring); a ValidationError
    names ``notify.<key>``. The same schema checks it inside ``edge.config`` (docs/config.md)."""
    try:
        return build(NotifySection, table_, "notify").config()
    except SettingError as exc:
        raise ValidationError(exc.key, exc.why) from None
