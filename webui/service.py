"""The panel inside the edge daemon (``fieldpost run``): attach(daemon) starts it in background threads."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from webui.app import create_app
from webui.config import from_edge_config
from webui.server import Panel
from webui.tls import make_self_signed

log = logging.getLogger("fieldpost.webui")


def attach(daemon: Any) -> Panel | None:
    settings = from_edge_config(daemon.config)
    if not settings.enabled:
        log.info("event=panel_disabled")
        return None
    if settings.tls_cert and not Path(settings.tls_cert).exists():
        # Set-up normally makes it (`fieldpost webui make-cert`); a missing one is made now, not skipped.
        make_self_signed(settings.tls_cert, settings.tls_key, now=time.time())
        log.warning("event=panel_cert_created cert=%s", settings.tls_cert)
    app = create_app(settings.flask)
    # one device-number cache and one codec runner in the process (the daemon closes the runner)
    app.extensions["fieldpost_numbers"] = daemon.numbers
    app.extensions["fieldpost_codecs"].close()
    app.extensions["fieldpost_codecs"] = daemon.codecs
    app.extensions["fieldpost_codecs_owned"] = False
    # the daemon's [notify] settings (SMTP), for the notifications page's "send test"
    app.extensions["fieldpost_notify_config"] = _notify_config(daemon)
    # the live serial links (webui/bridges.py): a bridge is online while its link is up
    app.extensions["fieldpost_links"] = lambda: daemon.manager.figures() if daemon.manager is not None else []
    try:
        panel = Panel(
            app,
            settings.host,
            settings.port,
            threads=settings.threads,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
        ).start()
    except OSError as exc:
        # A busy port must not stop ingest: the edge keeps storing readings without its panel.
        log.error("event=panel_not_started host=%s port=%s error=%s", settings.host, settings.port, exc)
        return None
    daemon.add_closer(panel.close)
    return panel


def _notify_config(daemon: Any):
    """The daemon's [notify] settings (the rules service has validated them already); without them
    a test e-mail says that SMTP is not set up."""
    from edge.errors import ConfigError, ValidationError
    from edge.notify import NotifyConfig, parse_notify

    try:
        return parse_notify(getattr(daemon.config, "extra", {}).get("notify"))
    except (ConfigError, ValidationError, AttributeError):
        return NotifyConfig()
