"""What ingest asks of the LoRaWAN side for one batch: joins, opening data uplinks, their
downlinks, quarantine within its limits. Holds the settings and the flood limiters (memory
only: a restart forgets the buckets, never the rows or the counters, which are in SQLite).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from edge import alarms, registry
from edge.lorawan import frames as F
from edge.lorawan import server
from edge.lorawan.limits import LogLimiter, RateLimiter
from edge.lorawan.settings import LoRaWANSettings

COUNTER_RESET_RULE = "lorawan.counter_reset"


class Network:
    def __init__(
        self, settings: LoRaWANSettings | None = None, *, clock: Callable[[], float] = time.monotonic
    ):
        self.settings = settings or LoRaWANSettings()
        self.clock = clock
        self.mic_failures = RateLimiter(self.settings.mic_failures_per_min)
        self.quarantine_inserts = RateLimiter(self.settings.quarantine_per_min)
        self.logs = LogLimiter(self.settings.log_per_min)
        self.stats = {
            "joins": 0,
            "rejoins_asked": 0,
            "mic_flood": 0,
            "quarantine_dropped": 0,
            "quarantine_evicted": 0,
            "v1_refused": 0,
        }
        self._sessions: dict[int, server.Session] = {}
        self._quarantined = False

    # --- per batch -----------------------------------------------------------------------

    def begin(self) -> None:
        self._sessions = {}
        self._quarantined = False

    def finish(self, conn: sqlite3.Connection) -> None:
        """Persist the sessions' counters and keep quarantine within its cap (end of the batch)."""
        server.save(conn, list(self._sessions.values()))
        if self._quarantined:
            cur = conn.execute(
                "DELETE FROM quarantine WHERE device_id IN (SELECT device_id FROM quarantine"
                " ORDER BY last_seen DESC, first_seen DESC LIMIT -1 OFFSET ?)",
                (self.settings.quarantine_max,),
            )
            if cur.rowcount > 0:
                self.stats["quarantine_evicted"] += cur.rowcount
                server.add_counter(conn, "quarantine_evicted", cur.rowcount)
        self._sessions = {}

    def session(self, conn: sqlite3.Connection, devaddr: int) -> server.Session | None:
        s = self._sessions.get(devaddr)
        if s is None:
            s = server.session_by_devaddr(conn, devaddr)
            if s is not None:
                self._sessions[devaddr] = s
        return s

    # --- limits --------------------------------------------------------------------------

    def mic_failed(self, source: object) -> bool:
        """Count a MIC failure of ``source``; False once it is over its rate (then: no log line)."""
        if self.mic_failures.allow(source, self.clock()):
            return True
        self.stats["mic_flood"] += 1
        return False

    def quarantine(
        self,
        conn: sqlite3.Connection,
        device_id: str,
        *,
        rssi: int | None,
        bridge: str | None,
        frame: bytes,
        now: float,
    ) -> bool:
        """Note an unknown device in quarantine unless its source is over its insert rate."""
        if not self.quarantine_inserts.allow(bridge, self.clock()):
            self.stats["quarantine_dropped"] += 1
            server.add_counter(conn, "quarantine_dropped", 1)
            return False
        registry.note_unknown(conn, device_id, rssi=rssi, bridge=bridge, frame=frame, now=now)
        self._quarantined = True
        return True

    def counter_reset(
        self, conn: sqlite3.Connection, session: server.Session, detail: str, now: float
    ) -> bytes:
        """A valid frame whose counter went back with other bytes: alarm (once while open) and the
        downlink that tells the node to join again (new keys, counters from 0, nothing lost)."""
        self.stats["rejoins_asked"] += 1
        conn.execute("UPDATE devices SET lorawan_reset = 1 WHERE id = ?", (session.device_id,))
        open_ = conn.execute(
            "SELECT 1 FROM alarms WHERE rule = ? AND device_id = ? AND state != 'cleared'",
            (COUNTER_RESET_RULE, session.device_id),
        ).fetchone()
        if open_ is None:
            alarms.raise_alarm(
                conn,
                rule=COUNTER_RESET_RULE,
                device_id=session.device_id,
                severity="warning",
                message=f"frame counter went back ({detail}); the node was told to rejoin",
                now=now,
            )
        return session.downlink(ack=False, fport=server.PORT_CONTROL, payload=server.REJOIN)

    def join(self, conn: sqlite3.Connection, frame: bytes, *, number_of, now: float) -> tuple[str, bytes]:
        device_id, accept = server.join(conn, frame, number_of=number_of, settings=self.settings, now=now)
        self.stats["joins"] += 1
        # a new session replaces the old one: forget the batch's copy of it
        self._sessions = {k: s for k, s in self._sessions.items() if s.device_id != device_id}
        return device_id, accept


def parse_uplink(radio: bytes) -> F.DataFrame:
    return F.parse_data(radio)
