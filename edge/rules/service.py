"""Wiring the rules, alarms and notifications into the daemon (its ``edge.rules.service:attach`` point).

At start-up: the ``[[rules]]`` of the config file are validated and made the
database's config rules; ``[notify]`` is validated. Then the engine runs after
every ingest commit and every ``TICK_S`` on the daemon's timer, and the notifier
runs on its own thread (its HTTP/SMTP time-outs must not delay rule ticks).
A bad rule or notify setting stops the start with a ConfigError naming the key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from edge.errors import ConfigError, ValidationError
from edge.notify import Notifier, NotifyConfig
from edge.rules.engine import RuleEngine
from edge.rules.status import LinkStatus, SiteStatus
from edge.rules.store import sync_config_rules
from edge.store import connect

log = logging.getLogger("fieldpost.rules")

TICK_S = 5.0
NOTIFY_EVERY_S = 5.0


def load_config(config: Any) -> tuple[list, NotifyConfig]:
    """The rules and the notifications of an edge.config.Config (checked when it was loaded)."""
    return list(config.rules), config.notify.config()


def attach(daemon: Any) -> None:
    rules, notify_config = load_config(daemon.config)
    conn = connect(daemon.db_path)
    try:
        try:
            sync_config_rules(conn, rules, now=daemon.clock())
        except ValidationError as exc:
            raise ConfigError(f"{exc.field}: {exc.message}") from None
    finally:
        conn.close()

    def links() -> list[LinkStatus]:
        manager = daemon.manager  # created after the attach points run
        if manager is None:
            return []
        return [LinkStatus(f["path"], bool(f["up"])) for f in manager.figures()]

    status = SiteStatus(links=links, buffer_capacity=daemon.config.ingest.high_water)
    engine = RuleEngine(
        lambda: connect(daemon.db_path),
        daemon.clock,
        status=status,
        numbers=daemon.numbers,
        codecs=daemon.codecs,
    ).start()
    daemon.add_hook(engine.on_readings)
    daemon.add_periodic(TICK_S, engine.tick)
    daemon.add_closer(engine.close)

    notifier = NotifierThread(Notifier(lambda: connect(daemon.db_path), notify_config, daemon.clock))
    notifier.start()
    daemon.add_closer(notifier.stop)
    daemon.metrics_sources.extra.append(lambda: metric_families(engine, notifier.notifier))
    log.info("rules=attached config_rules=%d notify_targets=%d", len(rules), len(notify_config.targets))


class NotifierThread:
    """Runs ``notifier.run()`` every ``every_s`` until stopped."""

    def __init__(self, notifier: Notifier, every_s: float = NOTIFY_EVERY_S):
        self.notifier = notifier
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> NotifierThread:
        self._thread = threading.Thread(target=self._loop, name="fieldpost-notify", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None
        self.notifier.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.notifier.run()
            except Exception:  # the next round tries again
                log.exception("notify_run_failed")
            self._stop.wait(self._every_s)


def metric_families(engine: RuleEngine, notifier: Notifier) -> Iterator:
    from prometheus_client.core import CounterMetricFamily

    rules = CounterMetricFamily("fieldpost_rules_events", "Rule engine events, by kind", labels=["event"])
    for name, value in engine.stats.items():
        rules.add_metric([name], value)
    yield rules
    sent = CounterMetricFamily(
        "fieldpost_notifications", "Notification attempts, by outcome", labels=["outcome"]
    )
    for name, value in notifier.stats.items():
        sent.add_metric([name], value)
    yield sent
