"""Notifications through apprise (Slack, Telegram, Twilio SMS, ntfy, Matrix, e-mail ... by URL).

Each ``[[notify.apprise]]`` target has a name and an apprise URL; the queue stores the *name*, so
the URL (which carries the service's token) stays in the configuration file, out of the database and
its backups. apprise tries once (its own retries are off, ``retry=0`` is its default) and the
queue does the retrying. apprise is imported only when an apprise target is configured.
"""

from __future__ import annotations

import logging

from edge.errors import DeliveryError
from edge.notify.config import AppriseTarget
from edge.notify.transports import Message

SEVERITY_TYPE = {"info": "info", "warning": "warning", "critical": "failure"}


def check_url(url: str) -> str | None:
    """Why apprise cannot use ``url`` (unknown service, missing token ...), or None when it can."""
    import apprise

    if apprise.Apprise.instantiate(url) is None:
        scheme = url.split("://", 1)[0]
        return f"{url!r} is not a valid apprise URL (service {scheme!r} unknown or URL incomplete)"
    return None


class AppriseTransport:
    channel = "apprise"

    def __init__(self, targets: tuple[AppriseTarget, ...], timeout_s: float = 30.0):
        self._urls = {t.name: t.url for t in targets}
        self._timeout_s = timeout_s

    def send(self, target: str, message: Message) -> None:
        import apprise

        url = self._urls.get(target)
        if url is None:
            raise DeliveryError(target, "no [[notify.apprise]] target of this name any more", permanent=True)
        sender = apprise.Apprise(asset=apprise.AppriseAsset(service_timeout=self._timeout_s))
        if not sender.add(url):
            raise DeliveryError(target, check_url(url) or "not a valid apprise URL", permanent=True)
        with apprise.LogCapture(level=logging.WARNING) as said:
            result = sender.notify(
                body=message.text, title=message.title, notify_type=SEVERITY_TYPE[message.severity]
            )
        if not result:
            why = " ".join(line.split(" - ", 2)[-1].strip() for line in said.getvalue().splitlines())
            raise DeliveryError(target, why or "apprise could not deliver")
