"""E-mail over SMTP, encrypted by default: STARTTLS (587) or implicit TLS (465); ``none`` only by choice.

The certificate is always verified (the system's CAs, or ``ca_file`` for a site's own server), and
STARTTLS that the server does not offer is an error, never a silent fall-back to clear text. A
password is never sent in clear to another host: the configuration refuses it
(edge.notify.config), and :meth:`SmtpTransport.send` checks again in case settings were built by hand.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from edge.config.core import is_loopback
from edge.errors import DeliveryError
from edge.notify.config import SmtpSettings
from edge.notify.transports import Message


class SmtpTransport:
    channel = "email"

    def __init__(self, settings: SmtpSettings):
        self.settings = settings

    def send(self, target: str, message: Message) -> None:
        smtp = self.settings
        if smtp.password and smtp.tls == "none" and not is_loopback(smtp.host):
            raise DeliveryError(
                target,
                f"notify.email.password: refusing to send it in clear to {smtp.host} (notify.email.tls = none)",
                permanent=True,
            )
        mail = EmailMessage()
        mail["From"] = smtp.sender
        mail["To"] = target
        mail["Subject"] = message.title
        mail.set_content(message.text)
        try:
            context = ssl.create_default_context(cafile=smtp.ca_file)
        except OSError as exc:
            raise DeliveryError(
                target, f"notify.email.ca_file {smtp.ca_file}: {exc}", permanent=True
            ) from exc
        try:
            if smtp.tls == "tls":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    smtp.host, smtp.port, timeout=smtp.timeout_s, context=context
                )
            else:
                client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
            with client:
                if smtp.tls == "starttls":
                    # raises SMTPNotSupportedError when the server does not offer STARTTLS
                    client.starttls(context=context)
                if smtp.username:
                    client.login(smtp.username, smtp.password or "")
                client.send_message(mail)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                target, f"via {smtp.host}:{smtp.port} ({smtp.tls}): {type(exc).__name__}: {exc}"
            ) from exc
