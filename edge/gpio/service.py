"""The indicators inside the edge daemon: attach(daemon) is its attach point (edge.daemon.ATTACH_POINTS).

Config, all optional::

    [gpio]
    enabled = true            # false: no indicators even on a Pi
    map = "/etc/fieldpost/gpio.json"   # default: hardware/pi/gpio.json from the installation
    refresh_s = 1.0           # how often link, cloud and alarm state are re-read

The button's long press asks the sync service for an immediate attempt through
``daemon.force_sync()`` when the daemon offers one; a short press silences the alarms
raised at that moment. Both are written to the audit log (actor "button").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, ValidationError
from edge.gpio.indicators import Indicators, NullIndicators, detect_pin_factory, open_indicators
from edge.gpio.pinmap import DEFAULT_GPIO_MAP, load_pin_map
from edge.gpio.status import status_from_db
from edge.registry import audit
from edge.store.connection import LazyReader

log = logging.getLogger("fieldpost.gpio")


class IndicatorService:
    """Feeds the indicators from the database and the daemon's links, on the daemon's timer."""

    def __init__(self, indicators: Indicators | NullIndicators, db_path: Path, links_up: Callable[[], bool]):
        self.indicators = indicators
        self._reader = LazyReader(db_path)
        self._links_up = links_up

    def refresh(self) -> None:
        self.indicators.show(status_from_db(self._reader.conn, link_up=self._links_up()))

    def close(self) -> None:
        self.indicators.close()
        self._reader.close()


def all_links_up(daemon: Any) -> bool:
    manager = getattr(daemon, "manager", None)
    if manager is None:
        return False
    figures = manager.figures()
    return bool(figures) and all(f["up"] for f in figures)  # no module attached counts as link down


def _audit(daemon: Any, action: str) -> None:
    ingest = getattr(daemon, "ingest", None)
    if ingest is None:
        return

    def write(conn, now):
        audit(conn, actor="button", action=action, target=None, detail={"source": "gpio"}, now=now)

    ingest.submit_call(write)


def attach(daemon: Any, *, pin_factory: Any | None = None) -> IndicatorService | None:
    section = daemon.config.gpio
    if not section.enabled:
        log.info("gpio indicators=off reason='gpio.enabled = false'")
        return None
    try:
        pin_map = load_pin_map(Path(section.map or DEFAULT_GPIO_MAP))
        refresh_s = section.refresh_s
    except (ValidationError, OSError, TypeError, ValueError) as exc:
        raise ConfigError(f"gpio.map: {exc}") from None

    def force_sync() -> None:
        _audit(daemon, "sync.force")
        trigger = getattr(daemon, "force_sync", None)
        if callable(trigger):
            trigger()
        else:
            log.warning("gpio force_sync=unsupported reason='the daemon offers no force_sync()'")

    indicators = open_indicators(
        pin_map,
        pin_factory=pin_factory,
        detect=detect_pin_factory,
        on_silence=lambda: _audit(daemon, "alarm.silence"),
        on_force_sync=force_sync,
    )
    if isinstance(indicators, NullIndicators):
        return None
    service = IndicatorService(indicators, daemon.db_path, lambda: all_links_up(daemon))
    daemon.add_periodic(refresh_s, service.refresh)
    daemon.add_closer(service.close)
    return service
