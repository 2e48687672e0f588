"""Retention: keep the buffer within its age and size limits, by a declared policy, in small steps.

Policy, in this order:

1. **Age**: data older than ``max_age_days`` that the cloud already has (readings at or
   below the sync cursor, synced outbox messages, events; downlink results, which the cloud
   gets as downlink status instead) is deleted. Unsynced data is never deleted for its age.
2. **Size, synced first**: while the database is over ``max_db_bytes`` (or the disk has
   less than ``min_free_disk_bytes`` free), the OLDEST SYNCED data goes first (oldest across
   all devices), down to ``low_water`` x ``max_db_bytes`` so that eviction does not run on
   every new reading.
3. **Size, unsynced last**: only when everything synced is gone and the database would still
   not fit, the oldest unsynced readings are dropped, then unsynced outbox messages, and
   NEVER alarms. That raises a critical alarm (rule "retention") and an event saying how
   many readings and bytes were dropped.
4. **Reclaim**: ``PRAGMA incremental_vacuum`` hands the freed pages back (the schema uses
   ``auto_vacuum=INCREMENTAL``) and a checkpoint writes them to the file, so it shrinks.

Every delete is a small transaction (a chunk of one device's id range, sized so that it
holds the write lock for about ``chunk_target_ms``), run through ``run``: in the daemon the
ingest writer runs them between its uplink batches, so retention never makes ingest wait for
the lock; alone (the CLI), a transaction on the pass's own connection. A pass stopped at any
point is simply resumed by the next one: nothing is planned ahead that a crash could lose.
"""

from __future__ import annotations

import heapq
import json
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from edge.errors import ConfigError
from edge.store import cursor, readings
from edge.store.connection import transaction
from edge.store.numbers import all_numbers
from edge.sync.config import SectionReader

log = logging.getLogger("fieldpost.retention")

T = TypeVar("T")
Runner = Callable[[Callable[[sqlite3.Connection], T]], T]
VACUUM_PAGES = 256  # pages handed back per transaction (1 MiB of 4 KiB pages)
RECLAIM_AT_PAGES = 256  # free pages left by others worth a reclaim


@dataclass(frozen=True)
class RetentionPolicy:
    max_age_s: float | None = 90 * 86400.0
    max_db_bytes: int | None = None
    low_water: float = 0.8
    min_free_disk_bytes: int = 0
    chunk_rows: int = 2000  # rows per delete to start with; adapted to chunk_target_ms
    chunk_target_ms: float = 20.0
    interval_s: float = 300.0


def parse_retention_config(section: Mapping[str, Any] | None) -> RetentionPolicy:
    """Validate the ``[retention]`` table; a bad value raises ConfigError naming the key."""
    raw = dict(section or {})
    r = SectionReader(raw, "retention")

    def optional(read: Callable[..., Any], key: str, default: Any, lo: float, hi: float) -> Any:
        # The panel's null (no limit) passes through; the config file's checks apply otherwise.
        if raw.get(key, default) is None:
            r.seen.add(key)
            return None
        return read(key, default, lo=lo, hi=hi)

    age_days = optional(r.float, "max_age_days", 90, 0.0001, 36500)
    max_bytes = optional(r.int, "max_db_bytes", None, 64 * 1024, 2**50)
    policy = RetentionPolicy(
        max_age_s=None if age_days is None else age_days * 86400,
        max_db_bytes=max_bytes,
        low_water=r.float("low_water", 0.8, lo=0.1, hi=1.0),
        min_free_disk_bytes=r.int("min_free_disk_bytes", 0, lo=0, hi=2**50),
        chunk_rows=r.int("chunk_rows", 2000, lo=10, hi=1_000_000),
        chunk_target_ms=r.float("chunk_target_ms", 20.0, lo=1.0, hi=1000.0),
        interval_s=r.float("interval_s", 300, lo=1, hi=86400),
    )
    r.done()
    return policy


# The panel's keys (webui/settings_store.py), named after the [retention] keys they replace.
SETTING_KEYS = ("retention.max_age_days", "retention.max_db_bytes")


def policy_with_settings(base: RetentionPolicy, values: Mapping[str, Any]) -> RetentionPolicy:
    """``base`` (from the config file) with the panel's stored values laid over it.

    Each value is checked as the config file's would be; a bad one is logged with its key and
    ignored (the config file's value stays). ``retention.max_db_bytes`` = null means no size limit.
    """
    policy = base
    for key, field in (("retention.max_age_days", "max_age_s"), ("retention.max_db_bytes", "max_db_bytes")):
        if key not in values:
            continue
        name = key.split(".", 1)[1]
        try:
            parsed = parse_retention_config({name: values[key]})
        except ConfigError as exc:
            log.error("settings=ignored key=%s value=%r error=%r", key, values[key], str(exc))
            continue
        if name == "max_age_days" and values[key] is None:
            log.error("settings=ignored key=%s value=None error='must be a number of days'", key)
            continue
        policy = replace(policy, **{field: getattr(parsed, field)})
    return policy


@dataclass
class RetentionReport:
    aged_out: int = 0  # rows deleted for their age (readings + outbox + events)
    synced_evicted: int = 0  # synced rows deleted for size
    unsynced_dropped: int = 0  # unsynced readings and messages dropped (never alarms)
    unsynced_dropped_bytes: int = 0
    bytes_before: int = 0  # database file size (main file) before and after the pass
    bytes_after: int = 0
    alarm_id: int | None = None
    transactions: int = 0
    longest_transaction_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ measuring


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes the database needs: its pages minus the free ones."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * page_size


def _db_path(conn: sqlite3.Connection) -> Path | None:
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main" and row[2]:
            return Path(row[2])
    return None


def _file_bytes(conn: sqlite3.Connection) -> int:
    path = _db_path(conn)
    return path.stat().st_size if path and path.exists() else used_bytes(conn)


def direct_runner(conn: sqlite3.Connection) -> Runner:
    """Each step in a transaction of its own on ``conn`` (retention outside the daemon)."""

    def run(fn):
        with transaction(conn):
            return fn(conn)

    return run


# ------------------------------------------------------------------ the pass


def apply_retention(
    conn: sqlite3.Connection,
    policy: RetentionPolicy,
    *,
    now: float,
    run: Runner | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> RetentionReport:
    """One retention pass (see the module doc for the policy); returns what it did.

    ``conn`` is the pass's own connection, used to plan (reads) and, without ``run``, to write.
    ``stop()`` is asked between steps: a pass that is told to stop ends early and cleanly.
    """
    return _Pass(conn, policy, now, run or direct_runner(conn), stop).execute()


@dataclass(order=True)
class _Front:
    """The oldest deletable reading of one device (a heap entry: oldest first)."""

    received_ms: int
    first_id: int
    number: int
    last_id: int  # delete up to here: the sync cursor (synced data) or the range end


class _Pass:
    def __init__(self, conn, policy: RetentionPolicy, now: float, run: Runner, stop: Callable[[], bool]):
        self.conn, self.policy, self.now, self._run, self._stop = conn, policy, now, run, stop
        self.report = RetentionReport()
        self.chunk = policy.chunk_rows

    def execute(self) -> RetentionReport:
        report = self.report
        report.bytes_before = _file_bytes(self.conn)
        if self.policy.max_age_s is not None:
            self._age_out(round((self.now - self.policy.max_age_s) * 1000))
        if self._over(1.0):
            self._evict_synced()
            if self._over(1.0):
                self._drop_unsynced()
        # Free pages are handed back after this pass's deletes, and also when others left them (the
        # v1 -> v2 migration frees the old tables; a device's readings deleted in the panel).
        free_pages = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        if (
            report.aged_out
            or report.synced_evicted
            or report.unsynced_dropped
            or free_pages >= RECLAIM_AT_PAGES
        ):
            self._reclaim()
            report.bytes_after = _file_bytes(self.conn)
            log.info(
                "retention=pass aged_out=%d synced_evicted=%d unsynced_dropped=%d bytes_before=%d"
                " bytes_after=%d transactions=%d longest_ms=%.1f",
                report.aged_out,
                report.synced_evicted,
                report.unsynced_dropped,
                report.bytes_before,
                report.bytes_after,
                report.transactions,
                report.longest_transaction_ms,
            )
        else:
            report.bytes_after = _file_bytes(self.conn)
        return report

    # --------------------------------------------------------------- steps

    def _step(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run one write step and size the next chunk so a step's own work (what it adds to the
        transaction it runs in, before the commit) takes about chunk_target_ms."""
        took: list[float] = []

        def timed(conn: sqlite3.Connection) -> T:
            started = time.perf_counter()
            try:
                return fn(conn)
            finally:
                took.append(time.perf_counter() - started)

        result = self._run(timed)
        ms = took[0] * 1000
        self.report.transactions += 1
        self.report.longest_transaction_ms = max(self.report.longest_transaction_ms, ms)
        target = self.policy.chunk_target_ms
        if ms > target * 1.5:
            self.chunk = max(10, int(self.chunk / 2))
        elif ms < target / 2:
            self.chunk = min(100_000, int(self.chunk * 1.5) + 1)
        return result

    def _over(self, fraction: float) -> bool:
        policy = self.policy
        if policy.max_db_bytes is not None and used_bytes(self.conn) > policy.max_db_bytes * fraction:
            return True
        if policy.min_free_disk_bytes > 0:
            path = _db_path(self.conn)
            if path is not None and shutil.disk_usage(path.parent).free < policy.min_free_disk_bytes:
                return True
        return False

    def _chunk_end(self, low: int, high: int) -> int:
        """The id that ends a chunk of ``self.chunk`` rows from ``low`` (``high`` if fewer)."""
        row = self.conn.execute(
            "SELECT id FROM readings WHERE id BETWEEN ? AND ? ORDER BY id LIMIT 1 OFFSET ?",
            (low, high, self.chunk - 1),
        ).fetchone()
        return high if row is None else row[0]

    def _age_out(self, cutoff_ms: int) -> None:
        synced = cursor.synced_through(self.conn)
        for number in sorted(all_numbers(self.conn)):
            low, high = readings.device_bounds(number)
            first_young = readings.first_at_or_after(self.conn, number, cutoff_ms)
            old_end = high if first_young is None else first_young - 1
            # Synced readings (every port) up to the cursor; past it only what the cloud never
            # gets from the readings table (downlink results).
            through = min(old_end, synced.get(number, low - 1))
            self._delete_range(low, through, cutoff_ms, None, "aged_out")
            self._delete_range(max(low, through + 1), old_end, cutoff_ms, readings.SYNCED_PORTS, "aged_out")
            if self._stop():
                return
        cutoff = cutoff_ms / 1000
        for sql in (
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE synced_at IS NOT NULL AND created_at < ?"
            " ORDER BY id LIMIT ?)",
            "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ? ORDER BY at LIMIT ?)",
        ):
            while not self._stop():
                n = self._step(lambda c, sql=sql: c.execute(sql, (cutoff, self.chunk)).rowcount)
                self.report.aged_out += n
                if n == 0:
                    break

    def _delete_range(
        self, low: int, high: int, cutoff_ms: int | None, skip_ports: tuple[int, ...] | None, counter: str
    ) -> None:
        """Delete one device's readings in [low, high] (older than cutoff_ms; not of skip_ports)."""
        where = ""
        params: list[Any] = []
        if cutoff_ms is not None:
            where += " AND received_ms < ?"
            params.append(cutoff_ms)
        if skip_ports:
            where += f" AND port NOT IN ({','.join(str(p) for p in skip_ports)})"
        while low <= high and not self._stop():
            end = self._chunk_end(low, high)
            n = self._step(
                lambda c, a=low, b=end: (
                    c.execute(
                        f"DELETE FROM readings WHERE id BETWEEN ? AND ?{where}", (a, b, *params)
                    ).rowcount
                )
            )
            setattr(self.report, counter, getattr(self.report, counter) + n)
            low = end + 1

    def _fronts(self, *, synced: bool) -> list[_Front]:
        """Per device, its oldest reading that may go: synced ones, or (synced=False) any."""
        marks = cursor.synced_through(self.conn) if synced else {}
        heap = []
        for number in all_numbers(self.conn):
            low, high = readings.device_bounds(number)
            last = min(high, marks.get(number, low - 1)) if synced else high
            front = self._front(number, low, last)
            if front is not None:
                heap.append(front)
        heapq.heapify(heap)
        return heap

    def _front(self, number: int, low: int, last: int) -> _Front | None:
        if last < low:
            return None
        row = self.conn.execute(
            "SELECT id, received_ms FROM readings WHERE id BETWEEN ? AND ? ORDER BY id LIMIT 1", (low, last)
        ).fetchone()
        return None if row is None else _Front(row[1], row[0], number, last)

    def _evict_synced(self) -> None:
        """Oldest synced first, across devices, until under the low-water mark."""
        while self._over(self.policy.low_water) and not self._stop():
            n = self._step(
                lambda c: (
                    c.execute(
                        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE synced_at IS NOT NULL"
                        " ORDER BY id LIMIT ?)",
                        (self.chunk,),
                    ).rowcount
                )
            )
            self.report.synced_evicted += n
            if n == 0:
                break
        self._evict_oldest(self._fronts(synced=True), self.policy.low_water, "synced_evicted")

    def _evict_oldest(
        self, heap: list[_Front], fraction: float, counter: str, *, measure: bool = False
    ) -> int:
        """Delete readings oldest first across the devices of ``heap`` while over ``fraction``.

        Each step takes a chunk from the device with the oldest reading, up to the time of the
        next device's oldest one, so the deletions follow receive time across devices.
        Returns the payload bytes deleted (when ``measure``).
        """
        payload_bytes = 0
        while heap and self._over(fraction) and not self._stop():
            front = heapq.heappop(heap)
            until_ms = heap[0].received_ms if heap else None
            end = self._chunk_end(front.first_id, front.last_id)

            def delete(c, a=front.first_id, b=end, until=until_ms):
                bound = "" if until is None else " AND received_ms <= ?"
                params = (a, b) if until is None else (a, b, until)
                size = 0
                if measure:
                    size = c.execute(
                        f"SELECT coalesce(sum(length(raw)), 0) FROM readings WHERE id BETWEEN ? AND ?{bound}",
                        params,
                    ).fetchone()[0]
                # Never fewer than one row, so a device whose oldest reading is younger than the
                # next device's still advances.
                rows = c.execute(f"DELETE FROM readings WHERE id BETWEEN ? AND ?{bound}", params).rowcount
                if rows == 0:
                    rows = c.execute("DELETE FROM readings WHERE id = ?", (a,)).rowcount
                    if measure:
                        size = 0
                return rows, size

            rows, size = self._step(delete)
            setattr(self.report, counter, getattr(self.report, counter) + rows)
            payload_bytes += size
            nxt = self._front(front.number, front.first_id, front.last_id)
            if nxt is not None:
                heapq.heappush(heap, nxt)
        return payload_bytes

    def _drop_unsynced(self) -> None:
        """Last resort: drop the oldest unsynced readings, then messages (never alarms); raise an alarm."""
        before = self.report.unsynced_dropped
        oldest = self._oldest_ms()
        dropped_bytes = self._evict_oldest(self._fronts(synced=False), 1.0, "unsynced_dropped", measure=True)
        while self._over(1.0) and not self._stop():
            rows, size = self._step(self._drop_messages)
            if rows == 0:
                break
            self.report.unsynced_dropped += rows
            dropped_bytes += size
        dropped = self.report.unsynced_dropped - before
        if not dropped:
            if self._over(1.0):
                log.error("retention=stuck reason='only unsynced alarms left' used=%d", used_bytes(self.conn))
            return
        self.report.unsynced_dropped_bytes = dropped_bytes
        self._raise_drop_alarm(dropped, dropped_bytes, oldest)

    def _drop_messages(self, c: sqlite3.Connection) -> tuple[int, int]:
        """One chunk of the oldest unsynced outbox messages that are not alarms: (rows, bytes)."""
        oldest = "SELECT id FROM outbox WHERE synced_at IS NULL AND kind != 'alarm' ORDER BY priority DESC, id LIMIT ?"
        size = c.execute(
            f"SELECT coalesce(sum(length(body)), 0) FROM outbox WHERE id IN ({oldest})", (self.chunk,)
        ).fetchone()[0]
        rows = c.execute(f"DELETE FROM outbox WHERE id IN ({oldest})", (self.chunk,)).rowcount
        return rows, size

    def _oldest_ms(self) -> int | None:
        row = self.conn.execute("SELECT min(received_ms) FROM readings").fetchone()
        return row[0]

    def _raise_drop_alarm(self, dropped: int, dropped_bytes: int, oldest_ms: int | None) -> None:
        from edge.alarms import raise_alarm  # the rules area's lifecycle: alarms + history + outbox

        limit = self.policy.max_db_bytes
        since = (
            ""
            if oldest_ms is None
            else f", the oldest received {time.strftime('%Y-%m-%d %H:%M', time.gmtime(oldest_ms / 1000))} UTC"
        )
        message = (
            f"retention dropped {dropped} unsynced readings and messages ({dropped_bytes} bytes{since}) to keep"
            f" the database under {limit} bytes; the cloud will never receive them"
        )
        detail = {
            "dropped_messages": dropped,
            "dropped_bytes": dropped_bytes,
            "oldest_received_at": None if oldest_ms is None else oldest_ms / 1000,
            "max_db_bytes": limit,
        }
        now = self.now

        def record(c: sqlite3.Connection) -> int:
            c.execute(
                "INSERT INTO events (at, kind, device_id, message, detail)"
                " VALUES (?, 'retention_unsynced_dropped', NULL, ?, ?)",
                (now, message, json.dumps(detail)),
            )
            return raise_alarm(
                c,
                rule="retention",
                device_id=None,
                severity="critical",
                message=message,
                value=float(dropped),
                now=now,
            )

        self.report.alarm_id = self._step(record)
        log.error(
            "retention=unsynced_dropped messages=%d bytes=%d alarm=%s",
            dropped,
            dropped_bytes,
            self.report.alarm_id,
        )

    def _reclaim(self) -> None:
        """Hand the free pages back in steps, then checkpoint so the file itself shrinks."""
        while not self._stop():
            free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
            if not free:
                break
            pages = min(free, VACUUM_PAGES)
            self._step(lambda c, n=pages: free_pages(c, n))
        checkpoint(self.conn)


def free_pages(conn: sqlite3.Connection, pages: int) -> None:
    """Hand ``pages`` free pages back to the file system, inside the caller's transaction.

    The driver steps a statement that returns no columns only once, and each step of the pragma
    frees one page (executescript would step it to the end, but commits the transaction first).
    """
    for _ in range(pages):
        conn.execute("PRAGMA incremental_vacuum")


def checkpoint(conn: sqlite3.Connection) -> None:
    """Write the WAL back to the file (which applies a vacuum's truncation); never waits for
    the writer (PASSIVE), so it cannot hold up ingest."""
    if conn.in_transaction:
        raise RuntimeError("checkpoint() must run outside a transaction")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def reclaim(conn: sqlite3.Connection, progress: Callable[[int, int], None] | None = None) -> None:
    """Give every free page back and truncate the WAL, at once (``fieldpost db vacuum``, tests).

    ``progress(pages freed, pages to free)`` is called as the free pages go (a progress bar)."""
    if conn.in_transaction:
        raise RuntimeError("reclaim() must run outside a transaction")
    if progress is None:
        # executescript steps the pragma to completion; a plain execute() frees a single page.
        conn.executescript("PRAGMA incremental_vacuum;")
    else:
        total = conn.execute("PRAGMA freelist_count").fetchone()[0]
        left = total
        while left:
            conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES});")
            now_left = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if now_left >= left:
                break  # nothing more could be freed
            left = now_left
            progress(total - left, total)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
