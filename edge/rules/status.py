"""Where the timer rules get the site's state from: serial links, cloud sinks, buffer fill.

The engine only knows the :class:`StatusProvider` protocol. :class:`SiteStatus`
is the daemon's implementation: link state comes from a callable the link
manager provides (the daemon owns the links, the database does not know them),
cloud state from the ``sync_state`` table the sync side maintains, buffer fill
from the sync backlog (edge.store.backlog) against the ingest high-water mark.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from edge.store import backlog


@dataclass(frozen=True)
class LinkStatus:
    port: str
    up: bool
    since: float | None = None  # when it went into its current state, if known


@dataclass(frozen=True)
class CloudStatus:
    sink: str
    up: bool
    since: float | None = None


@dataclass(frozen=True)
class Snapshot:
    links: list[LinkStatus] = field(default_factory=list)
    clouds: list[CloudStatus] = field(default_factory=list)
    buffer_percent: float | None = None  # None: no capacity known, buffer rules stay quiet


class StatusProvider(Protocol):
    def snapshot(self, conn: sqlite3.Connection, now: float) -> Snapshot: ...


class SiteStatus:
    """The daemon's status provider.

    ``links``: returns the current LinkStatus of every configured port (the link
    manager's view); None when the process has no links (e.g. the panel).
    ``buffer_capacity``: unsynced readings and messages that count as 100 % (the ingest
    high-water mark); None to leave buffer rules quiet.
    """

    def __init__(
        self, *, links: Callable[[], Iterable[LinkStatus]] | None = None, buffer_capacity: int | None = None
    ):
        self._links = links
        self._capacity = buffer_capacity

    def snapshot(self, conn: sqlite3.Connection, now: float) -> Snapshot:
        links = list(self._links()) if self._links is not None else []
        return Snapshot(links=links, clouds=cloud_states(conn), buffer_percent=self._buffer_percent(conn))

    def _buffer_percent(self, conn: sqlite3.Connection) -> float | None:
        if not self._capacity:
            return None
        # Counting stops a little past the capacity: above 100 % the exact figure does not matter.
        unsynced = backlog.unsynced(conn, limit=int(self._capacity * 1.01) + 1)
        return 100.0 * unsynced / self._capacity


def cloud_states(conn: sqlite3.Connection) -> list[CloudStatus]:
    """A sink is down when its latest error is newer than its latest success.

    sync_state does not say when the outage began (last_error_at moves on with every
    retry), so ``since`` stays None and the rule engine times the outage itself,
    persisting the start in rule_state so a restart does not reset it.
    """
    rows = conn.execute("SELECT sink, last_success, last_error_at FROM sync_state ORDER BY sink").fetchall()
    out = []
    for sink, last_success, last_error_at in rows:
        down = last_error_at is not None and (last_success is None or last_error_at > last_success)
        out.append(CloudStatus(sink=sink, up=not down))
    return out
