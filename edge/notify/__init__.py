"""Alarm notifications: a durable queue (edge.notify.queue) in front of transports.

Transports (edge.notify.transports): ``webhook`` (HTTP POST of JSON), ``email`` (SMTP with
STARTTLS or TLS, edge.notify.smtp) and ``apprise`` (Slack, Telegram, Twilio, ntfy, Matrix ...,
edge.notify.apprise_transport). Configuration: the ``[notify]`` section (edge.notify.config).
"""

from edge.notify.config import AppriseTarget, NotifyConfig, SmtpSettings, Target, parse_notify
from edge.notify.queue import Notifier, backoff_delay
from edge.notify.transports import Message, Transport, WebhookTransport, transports_for

__all__ = [
    "AppriseTarget",
    "Message",
    "Notifier",
    "NotifyConfig",
    "SmtpSettings",
    "Target",
    "Transport",
    "WebhookTransport",
    "backoff_delay",
    "parse_notify",
    "transports_for",
]
