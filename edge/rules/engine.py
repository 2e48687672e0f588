"""The rule engine: runs the enabled rules on committed readings and on a timer.

Wiring (the daemon): ingest calls ``engine.on_readings(readings)`` after each
commit, with the readings just stored (evaluated from memory: their raw payloads
are decoded here, not read back); a timer calls ``engine.tick()`` every few
seconds. Both are safe to call from different threads. Neither ever raises into
its caller: ingest must keep ingesting whatever a rule does; errors are logged and
counted in ``engine.stats``.

Each call evaluates in one transaction: rule state, alarms (with their outbox
rows) and action downlinks commit together, so after a crash either all of a
decision is stored or none of it, and the next call redoes it. Each rule runs in
a savepoint, so one broken rule cannot undo another's work.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from edge import alarms
from edge.codecs import CodecRunner
from edge.ingest.process import CommittedReading
from edge.rules import state as rule_state
from edge.rules import store
from edge.rules.actions import run_action
from edge.rules.evaluate import (
    CLEAR,
    RAISE,
    Sample,
    State,
    down_sample,
    due,
    level_sample,
    rate_sample,
    render_message,
    silent_sample,
    step,
)
from edge.rules.model import Rule
from edge.rules.status import SiteStatus, Snapshot, StatusProvider
from edge.store import transaction
from edge.store.decode import decode_payload
from edge.store.numbers import Numbers
from edge.store.query import ReadingReader

log = logging.getLogger("fieldpost.rules")

READING_KINDS = ("threshold", "rate", "battery", "silent")
VALUE_KINDS = ("threshold", "rate", "battery")
ACTION_PREFIX = "action/"


@dataclass(frozen=True)
class StoredReading:
    id: int
    device_id: str
    measured_at: float  # when it was measured (received less its age): what value rules judge by
    values: list[dict[str, Any]]
    received_at: float  # when the edge heard it: what ends a silence


# What on_readings takes in: a reading id (read back from the database), or a reading just
# committed by ingest (evaluated from memory).
Incoming = int | CommittedReading


class RuleEngine:
    """``conn_factory()`` opens the engine's own connection (edge.store.connect on the buffer file).

    ``clock`` gives the time for :meth:`tick` when no ``now`` is passed; ``status``
    supplies link, cloud and buffer state (default: cloud state from sync_state only);
    ``numbers``: the process's device-number cache, to share it (default: the engine's own).
    """

    def __init__(
        self,
        conn_factory: Callable[[], sqlite3.Connection],
        clock: Callable[[], float] = time.time,
        *,
        status: StatusProvider | None = None,
        numbers: Numbers | None = None,
        codecs: CodecRunner | None = None,
    ):
        self._conn_factory = conn_factory
        self._clock = clock
        self._status = status or SiteStatus()
        self._conn: sqlite3.Connection | None = None
        self._feed: alarms.AlarmFeed | None = None
        # Decoding raw payloads: a plug-in codec's worker process starts only when one is needed.
        self._own_codecs = codecs is None  # a runner passed in (the daemon's) is its owner's to close
        self._codecs = codecs or CodecRunner()
        self._numbers = numbers or Numbers()
        self._pending_listeners: list[alarms.AlarmListener] = []
        self._lock = threading.RLock()
        self._queue: queue.Queue[list[Incoming] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.stats = {"readings": 0, "ticks": 0, "raised": 0, "cleared": 0, "actions": 0, "errors": 0}

    # ------------------------------------------------------------------ public entry points

    def on_readings(self, readings: Iterable[Any]) -> None:
        """Evaluate the reading rules on readings that ingest has just committed.

        ``readings``: the :class:`CommittedReading` objects ingest hands its hooks
        (evaluated from memory: only their raw payloads are decoded), or reading ids,
        or rows/dicts/objects with an ``id`` (read back from the database).
        After :meth:`start` this only queues them for the engine's own thread,
        so rules (and decoding) never slow the ingest writer down; otherwise it
        evaluates at once.
        """
        try:
            items = incoming(readings)
        except Exception:  # never break ingest
            self.stats["errors"] += 1
            log.exception("rules_bad_readings_argument")
            return
        if not items:
            return
        if self._worker is not None:
            self._queue.put(items)
        else:
            self._evaluate(items)

    def start(self) -> RuleEngine:
        """Evaluate readings on a thread of the engine's own (the daemon does this)."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="fieldpost-rules", daemon=True)
            self._worker.start()
        return self

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued reading has been evaluated; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _work(self) -> None:
        while True:
            items = self._queue.get()
            if items is None:
                self._queue.task_done()
                return
            batch, taken = list(items), 1
            while len(batch) < 1000:  # a burst is evaluated in one transaction
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                taken += 1
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    self._queue.task_done()
                    taken -= 1
                    break
                batch.extend(more)
            try:
                self._evaluate(batch)
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    def _evaluate(self, items: list[Incoming]) -> None:
        try:
            with self._lock:
                conn = self._connection()
                rules = [r for r in store.load_enabled(conn) if r.kind in READING_KINDS]
                if rules:
                    stored = decode_readings(self._codecs, self._reader(conn), items)
                    with transaction(conn):
                        for reading in stored:
                            for rule in rules:
                                if rule.applies_to(reading.device_id):
                                    self._guarded(conn, rule, self._on_reading, conn, rule, reading)
                self.stats["readings"] += len(items)  # counted once evaluated and committed
        except Exception:  # never break ingest
            self.stats["errors"] += 1
            log.exception("rules_on_readings_failed")

    def tick(self, now: float | None = None) -> None:
        """Timer work: silent modules, links, cloud, buffer, durations that ran out; then listeners."""
        now = self._clock() if now is None else now
        try:
            with self._lock:
                conn = self._connection()
                rules = store.load_enabled(conn)
                snapshot: list[Snapshot] = []  # taken once, only if a status rule needs it
                with transaction(conn):
                    for rule in rules:
                        self._guarded(conn, rule, self._tick_rule, conn, rule, now, snapshot)
                    self._forget_removed_rules(conn, {rule.name for rule in rules}, now)
                self.stats["ticks"] += 1
                self._feed_for(conn).poll()
        except Exception:
            self.stats["errors"] += 1
            log.exception("rules_tick_failed")

    def subscribe(self, listener: alarms.AlarmListener) -> None:
        """Follow alarm changes (from any process); delivered at the end of each :meth:`tick`."""
        with self._lock:
            if self._feed is None:
                self._pending_listeners.append(listener)
            else:
                self._feed.subscribe(listener)

    def close(self) -> None:
        """Evaluate what is queued, stop the thread (if started), close the connection."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(30)
            self._worker = None
        with self._lock:
            if self._own_codecs:
                self._codecs.close()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._feed = None

    # ------------------------------------------------------------------ readings

    def _reader(self, conn: sqlite3.Connection) -> ReadingReader:
        # One per evaluation: a reader keeps the devices' codecs from its first decode on, and a
        # device added or re-provisioned with another codec since must be decoded with the new one.
        return ReadingReader(conn, self._codecs, numbers=self._numbers)

    def _on_reading(self, conn: sqlite3.Connection, rule: Rule, reading: StoredReading) -> None:
        dev, at = reading.device_id, reading.measured_at
        if rule.kind == "silent":
            # Any reading ends a silence at once, without waiting for the timer (hearing from the
            # device is what counts, however old the reading it sent).
            heard = reading.received_at
            self._apply(conn, rule, dev, dev, silent_sample(rule, heard, 1.0, heard))
            return
        names = metric_names(rule)
        for item in reading.values:
            if item.get("name") not in names or (
                rule.channel is not None and item.get("channel") != rule.channel
            ):
                continue
            value = item.get("value")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            subject = dev if rule.kind == "battery" else f"{dev}/{item.get('channel')}"
            if rule.kind == "rate":
                current = rule_state.load(conn, rule.name, subject)
                sample = rate_sample(rule, current, float(value), at, reading.id)
                remembered = replace(current, last_value=float(value), last_at=at)
                rule_state.save(conn, rule.name, subject, remembered, device_id=dev, now=at)
                if sample is not None:
                    self._apply(conn, rule, subject, dev, sample, current=remembered)
            else:
                self._apply(conn, rule, subject, dev, level_sample(rule, float(value), at, reading.id))

    # ------------------------------------------------------------------ timer

    def _tick_rule(self, conn: sqlite3.Connection, rule: Rule, now: float, snapshot: list[Snapshot]) -> None:
        if rule.kind in VALUE_KINDS:
            # A duration that ran out between two readings (a slow node) is raised on time.
            for subject, dev in rule_state.subjects(conn, rule.name):
                if subject.startswith(ACTION_PREFIX):
                    continue
                current = rule_state.load(conn, rule.name, subject)
                if due(current, now, rule.for_s):
                    sample = Sample(
                        at=now,
                        value=current.pending_value,
                        holds=True,
                        recovered=False,
                        reading_id=current.pending_reading_id,
                    )
                    self._apply(conn, rule, subject, dev, sample, current=current)
            if rule.kind == "battery":
                # The battery now: from each device's newest reading (nothing decoded is stored).
                reader = self._reader(conn)
                for (dev,) in conn.execute("SELECT id FROM devices").fetchall():
                    if rule.applies_to(dev):
                        volts = reader.battery(dev)
                        if volts is not None:
                            self._apply(conn, rule, dev, dev, level_sample(rule, volts, now))
            return

        seen: set[str] = set()
        if rule.kind == "silent":
            rows = conn.execute(
                "SELECT id, interval_s, COALESCE(last_seen, created_at) FROM devices WHERE role = 'node'"
            ).fetchall()
            for dev, interval_s, last_seen in rows:
                if rule.applies_to(dev):
                    seen.add(dev)
                    limit = rule.intervals * interval_s
                    sample = silent_sample(rule, float(last_seen), float(interval_s), now)
                    self._apply(conn, rule, dev, dev, sample, limit=limit)
        else:
            if not snapshot:
                snapshot.append(self._status.snapshot(conn, now))
            snap = snapshot[0]
            if rule.kind == "link_down":
                for link in snap.links:
                    if rule.port is None or link.port == rule.port:
                        seen.add(link.port)
                        self._apply(conn, rule, link.port, None, down_sample(link.up, now, link.since))
            elif rule.kind == "cloud_down":
                for cloud in snap.clouds:
                    if rule.sink is None or cloud.sink == rule.sink:
                        seen.add(cloud.sink)
                        self._apply(conn, rule, cloud.sink, None, down_sample(cloud.up, now, cloud.since))
            elif rule.kind == "buffer" and snap.buffer_percent is not None:
                seen.add("buffer")
                self._apply(conn, rule, "buffer", None, level_sample(rule, snap.buffer_percent, now))
        # A device removed, a port or sink no longer configured: its alarm has nothing left to watch.
        for subject, _dev in rule_state.subjects(conn, rule.name):
            if subject not in seen and not subject.startswith(ACTION_PREFIX):
                self._drop_subject(conn, rule.name, subject, now)

    def _forget_removed_rules(self, conn: sqlite3.Connection, active: set[str], now: float) -> None:
        """A rule deleted or disabled: clear the alarms it still holds open and drop its state."""
        for name in rule_state.rules_with_state(conn):
            if name in active:
                continue
            for subject, _dev in rule_state.subjects(conn, name):
                self._drop_subject(conn, name, subject, now)
            rule_state.forget_rule(conn, name)

    def _drop_subject(self, conn: sqlite3.Connection, rule: str, subject: str, now: float) -> None:
        current = rule_state.load(conn, rule, subject)
        if current.alarm_id is not None and alarms.clear(conn, current.alarm_id, now=now, by="rules"):
            self.stats["cleared"] += 1
        conn.execute("DELETE FROM rule_state WHERE rule = ? AND subject = ?", (rule, subject))

    # ------------------------------------------------------------------ decisions

    def _apply(
        self,
        conn: sqlite3.Connection,
        rule: Rule,
        subject: str,
        device_id: str | None,
        sample: Sample,
        *,
        current: State | None = None,
        limit: float | None = None,
    ) -> None:
        if current is None:
            current = rule_state.load(conn, rule.name, subject)
        decision, new = step(current, sample, rule.for_s)
        if decision == RAISE:
            message = render_message(
                rule, subject if device_id is None else device_id, new.pending_value, limit=limit
            )
            alarm_id = alarms.raise_alarm(
                conn,
                rule=rule.name,
                device_id=device_id,
                severity=rule.severity,
                message=message,
                reading_id=new.pending_reading_id,
                value=new.pending_value,
                now=sample.at,
            )
            self.stats["raised"] += 1
            new = replace(
                new, alarm_id=alarm_id, pending_since=None, pending_reading_id=None, pending_value=None
            )
            rule_state.save(conn, rule.name, subject, new, device_id=device_id, now=sample.at)
            if run_action(conn, rule, transition="raised", alarm_device=device_id, now=sample.at) is not None:
                self.stats["actions"] += 1
            return
        if decision == CLEAR:
            assert current.alarm_id is not None
            if alarms.clear(conn, current.alarm_id, now=sample.at):
                self.stats["cleared"] += 1
            new = replace(new, alarm_id=None)
            rule_state.save(conn, rule.name, subject, new, device_id=device_id, now=sample.at)
            if (
                run_action(conn, rule, transition="cleared", alarm_device=device_id, now=sample.at)
                is not None
            ):
                self.stats["actions"] += 1
            return
        if new != current:
            rule_state.save(conn, rule.name, subject, new, device_id=device_id, now=sample.at)

    def _guarded(self, conn: sqlite3.Connection, rule: Rule, fn, *args) -> None:
        conn.execute("SAVEPOINT rule")
        try:
            fn(*args)
        except Exception:
            conn.execute("ROLLBACK TO rule")
            self.stats["errors"] += 1
            log.exception("rule_failed rule=%s", rule.name)
        conn.execute("RELEASE rule")

    # ------------------------------------------------------------------ plumbing

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._conn_factory()
            # Follow alarm_history from now on, so listeners hear about every alarm this engine raises.
            self._feed = alarms.AlarmFeed(self._conn, self._pending_listeners)
            self._pending_listeners = []
        return self._conn

    def _feed_for(self, conn: sqlite3.Connection) -> alarms.AlarmFeed:
        assert self._feed is not None  # made with the connection
        return self._feed


def metric_names(rule: Rule) -> set[str]:
    # The LPP codec names a voltage channel "voltage"; it is the battery too (edge.store.decode.battery_of).
    if rule.kind == "battery" and rule.metric == "battery":
        return {"battery", "voltage"}
    return {rule.metric}


def incoming(readings: Iterable[Any]) -> list[Incoming]:
    """Committed readings as they are; anything else as the id of a stored reading."""
    items: list[Incoming] = []
    for item in readings:
        if isinstance(item, CommittedReading) or (isinstance(item, int) and not isinstance(item, bool)):
            items.append(item)
        elif isinstance(item, (dict, sqlite3.Row)):
            items.append(int(item["id"]))
        else:
            items.append(int(item.id))
    return items


def decode_readings(codecs: CodecRunner, reader: ReadingReader, items: list[Incoming]) -> list[StoredReading]:
    """The readings with their decoded values, in the order they were measured.

    A committed reading is decoded from its raw payload with the codec it was stored under; an
    id is read back from the database (an unknown id is skipped).
    """
    out = []
    for item in items:
        if isinstance(item, CommittedReading):
            values, _error = decode_payload(codecs, item.codec, item.port, item.raw)
            out.append(
                StoredReading(item.id, item.device_id, item.measured_at, values or [], item.received_at)
            )
    ids = [item for item in items if isinstance(item, int)]
    out += [
        StoredReading(r.id, r.device_id, r.measured_at, reader.values(r), r.received_at)
        for r in reader.by_ids(ids)
    ]
    out.sort(key=lambda r: (r.measured_at, r.id))  # in the order they were measured
    return out
