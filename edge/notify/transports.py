"""How one notification reaches one target: the transport interface and the webhook transport.

A transport has a ``channel`` name and ``send(target, message)``, which either returns (handed
over) or raises :class:`edge.errors.DeliveryError`. The queue (edge.notify.queue) owns retries,
back-off and dead letters; transports only try once. ``transports_for(config)`` builds one of each
configured kind, which is what the queue, ``fieldpost notify test`` and the panel use.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from edge.errors import DeliveryError
from edge.notify.config import NotifyConfig


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    severity: str  # info, warning, critical
    payload: dict[str, Any]  # the alarm as JSON (what a webhook receives)


class Transport(Protocol):
    channel: str

    def send(self, target: str, message: Message) -> None:
        """Hand ``message`` to ``target`` once; raise DeliveryError if it was not accepted."""


def alarm_message(body: dict[str, Any]) -> Message:
    """The notification for one alarm state change (``alarms.outbox_body``)."""
    title = f"[Fieldpost] {body['severity'].upper()} {body['rule']} {body['state']}"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(body["ts"]))
    text = (
        f"{body['message']}\n\nalarm {body['alarm']}, device {body['device'] or '-'}, "
        f"value {body['value']}, state {body['state']} at {when}\n"
    )
    return Message(title, text, body["severity"], body)


def trial_message(now: float) -> Message:
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now))
    payload = {"test": True, "ts": now, "message": "Fieldpost test notification"}
    return Message(
        "[Fieldpost] test notification", f"This is a test notification sent at {when}.\n", "info", payload
    )


class WebhookTransport:
    channel = "webhook"

    def __init__(self, timeout_s: float = 10.0):
        self._timeout_s = timeout_s

    def send(self, target: str, message: Message) -> None:
        request = urllib.request.Request(
            target,
            data=json.dumps(message.payload).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "fieldpost"},
        )
        context = ssl.create_default_context() if target.startswith("https://") else None
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s, context=context) as response:
                if not 200 <= response.status < 300:  # urlopen raises for 4xx/5xx; 1xx/3xx are no success
                    raise DeliveryError(target, f"HTTP {response.status}")
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise DeliveryError(target, f"{type(exc).__name__}: {exc}") from exc


def transports_for(config: NotifyConfig) -> dict[str, Transport]:
    """One transport per channel the configuration uses, by channel name."""
    from edge.notify.smtp import SmtpTransport

    out: dict[str, Transport] = {"webhook": WebhookTransport(config.http_timeout_s)}
    if config.smtp is not None:
        out["email"] = SmtpTransport(config.smtp)
    if config.apprise:
        from edge.notify.apprise_transport import AppriseTransport

        out["apprise"] = AppriseTransport(config.apprise, timeout_s=config.http_timeout_s)
    return out
