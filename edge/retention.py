"""Retention: keep the buffer database within its age and size limits, by a declared policy.

Policy, in this order:

1. **Age**: data older than ``max_age_days`` that the cloud already has (synced
   outbox rows, readings whose outbox row is synced or that have none, events) is
   deleted. Unsynced data is never deleted for its age.
2. **Size, synced first**: while the database is over ``max_db_bytes`` (or the disk
   has less than ``min_free_disk_bytes`` free), the OLDEST SYNCED data goes first,
   down to ``low_water`` x ``max_db_bytes`` so that eviction does not run on every
   new reading.
3. **Size, unsynced last**: only when everything synced is gone and the database
   would still not fit, the oldest unsynced messages are dropped, bulk history
   before readings, and NEVER alarms. That raises a critical alarm (rule
   "retention") and an event saying how many messages and bytes were dropped.
4. **Reclaim**: ``PRAGMA incremental_vacuum`` hands the freed pages back (the schema
   uses ``auto_vacuum=INCREMENTAL``) and a WAL checkpoint truncates the file, so the
   file really shrinks.

``apply_retention(conn, policy, now=...)`` does one pass; ``RetentionWorker`` runs it
on a timer. The ``[retention]`` config keys are documented in docs/sync.md; an admin's
``retention.max_age_days`` / ``retention.max_db_bytes`` from the panel (the ``settings``
table) are laid over them by :func:`policy_with_settings`.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from edge.db import connect, transaction
from edge.errors import ConfigError
from edge.sync.config import SectionReader
from edge.sync.panel_settings import SettingsWatch
from edge.sync.worker_thread import ThreadedLoop

log = logging.getLogger("fieldpost.retention")


@dataclass(frozen=True)
class RetentionPolicy:
    max_age_s: float | None = 90 * 86400.0
    max_db_bytes: int | None = None
    low_water: float = 0.8
    min_free_disk_bytes: int = 0
    chunk_rows: int = 2000
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
        interval_s=r.float("interval_s", 300, lo=1, hi=86400),
    )
    r.done()
    return policy


@dataclass
class RetentionReport:
    aged_out: int = 0  # rows deleted for their age (readings + outbox + events)
    synced_evicted: int = 0  # synced rows deleted for size
    unsynced_dropped: int = 0  # unsynced outbox messages dropped (never alarms)
    unsynced_dropped_bytes: int = 0
    bytes_before: int = 0  # database file size (main file) before and after the pass
    bytes_after: int = 0
    alarm_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ measuring


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes the database needs: its pages minus the free ones."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * page_size


def _file_bytes(conn: sqlite3.Connection) -> int:
    path = _db_path(conn)
    return path.stat().st_size if path and path.exists() else used_bytes(conn)


def _db_path(conn: sqlite3.Connection) -> Path | None:
    for row in conn.execute("PRAGMA database_list"):
        if row[1] == "main" and row[2]:
            return Path(row[2])
    return None


def _disk_low(conn: sqlite3.Connection, policy: RetentionPolicy) -> bool:
    if policy.min_free_disk_bytes <= 0:
        return False
    path = _db_path(conn)
    return path is not None and shutil.disk_usage(path.parent).free < policy.min_free_disk_bytes


def _over(conn: sqlite3.Connection, policy: RetentionPolicy, fraction: float) -> bool:
    if policy.max_db_bytes is not None and used_bytes(conn) > policy.max_db_bytes * fraction:
        return True
    return _disk_low(conn, policy)


# ------------------------------------------------------------------ the pass


def apply_retention(conn: sqlite3.Connection, policy: RetentionPolicy, *, now: float) -> RetentionReport:
    """One retention pass (see the module doc for the policy); returns what it did."""
    report = RetentionReport(bytes_before=_file_bytes(conn))
    _pending_reading_ids(conn)
    try:
        if policy.max_age_s is not None:
            report.aged_out = _age_out(conn, now - policy.max_age_s)
        if _over(conn, policy, 1.0):
            while _over(conn, policy, policy.low_water):
                evicted = _evict_synced_chunk(conn, policy.chunk_rows)
                if not evicted:
                    break
                report.synced_evicted += evicted
            if _over(conn, policy, 1.0):
                _drop_unsynced(conn, policy, report, now)
    finally:
        conn.execute("DROP TABLE IF EXISTS temp.retention_pending")
    if report.aged_out or report.synced_evicted or report.unsynced_dropped:
        reclaim(conn)
    report.bytes_after = _file_bytes(conn)
    if report.aged_out or report.synced_evicted or report.unsynced_dropped:
        log.info(
            "retention=pass aged_out=%d synced_evicted=%d unsynced_dropped=%d bytes_before=%d bytes_after=%d",
            report.aged_out,
            report.synced_evicted,
            report.unsynced_dropped,
            report.bytes_before,
            report.bytes_after,
        )
    return report


def _pending_reading_ids(conn: sqlite3.Connection) -> None:
    # Readings the cloud has not confirmed: never deleted as "synced". (outbox.ref_id has no
    # index; the pending rows do, through outbox_pending, so collect them once per pass.)
    conn.execute("DROP TABLE IF EXISTS temp.retention_pending")
    conn.execute("CREATE TEMP TABLE retention_pending (id INTEGER PRIMARY KEY)")
    conn.execute(
        "INSERT OR IGNORE INTO temp.retention_pending SELECT ref_id FROM outbox"
        " WHERE synced_at IS NULL AND kind = 'reading' AND ref_id IS NOT NULL"
    )


def _age_out(conn: sqlite3.Connection, cutoff: float) -> int:
    with transaction(conn):
        n = conn.execute(
            "DELETE FROM readings WHERE received_at < ? AND id NOT IN (SELECT id FROM temp.retention_pending)",
            (cutoff,),
        ).rowcount
        n += conn.execute(
            "DELETE FROM outbox WHERE synced_at IS NOT NULL AND created_at < ?",
            (cutoff,),
        ).rowcount
        n += conn.execute("DELETE FROM events WHERE at < ?", (cutoff,)).rowcount
    return n


def _evict_synced_chunk(conn: sqlite3.Connection, chunk: int) -> int:
    """Delete the oldest ``chunk`` synced readings and synced outbox rows; 0 when none are left."""
    with transaction(conn):
        n = conn.execute(
            "DELETE FROM readings WHERE id IN (SELECT id FROM readings"
            " WHERE id NOT IN (SELECT id FROM temp.retention_pending) ORDER BY id LIMIT ?)",
            (chunk,),
        ).rowcount
        n += conn.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE synced_at IS NOT NULL ORDER BY id LIMIT ?)",
            (chunk,),
        ).rowcount
    return n


def _drop_unsynced(
    conn: sqlite3.Connection,
    policy: RetentionPolicy,
    report: RetentionReport,
    now: float,
) -> None:
    """Last resort: drop the oldest unsynced non-alarm messages until the database fits; raise an alarm."""
    dropped = dropped_bytes = 0
    first_ts = last_ts = None
    while _over(conn, policy, 1.0):
        with transaction(conn):
            rows = conn.execute(
                "SELECT id, kind, ref_id, length(body), created_at FROM outbox"
                " WHERE synced_at IS NULL AND kind != 'alarm' ORDER BY priority DESC, id LIMIT ?",
                (policy.chunk_rows,),
            ).fetchall()
            if not rows:
                break
            reading_ids = json.dumps([r[2] for r in rows if r[1] == "reading" and r[2] is not None])
            raw = conn.execute(
                "SELECT coalesce(sum(length(raw) + coalesce(length(decoded), 0)), 0) FROM readings"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (reading_ids,),
            ).fetchone()[0]
            conn.execute(
                "DELETE FROM readings WHERE id IN (SELECT value FROM json_each(?))",
                (reading_ids,),
            )
            conn.executemany("DELETE FROM outbox WHERE id = ?", [(r[0],) for r in rows])
            dropped += len(rows)
            dropped_bytes += sum(r[3] for r in rows) + raw
            first_ts = rows[0][4] if first_ts is None else min(first_ts, min(r[4] for r in rows))
            last_ts = max(r[4] for r in rows) if last_ts is None else max(last_ts, max(r[4] for r in rows))
    if not dropped:
        if _over(conn, policy, 1.0):
            log.error(
                "retention=stuck reason='only unsynced alarms left' used=%d",
                used_bytes(conn),
            )
        return
    report.unsynced_dropped = dropped
    report.unsynced_dropped_bytes = dropped_bytes
    limit = policy.max_db_bytes
    message = (
        f"retention dropped {dropped} unsynced messages ({dropped_bytes} bytes, created "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(first_ts))} .. "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(last_ts))} UTC) to keep the database under "
        f"{limit} bytes; the cloud will never receive them"
    )
    detail = {
        "dropped_messages": dropped,
        "dropped_bytes": dropped_bytes,
        "oldest_created_at": first_ts,
        "newest_created_at": last_ts,
        "max_db_bytes": limit,
    }
    with transaction(conn):
        conn.execute(
            "INSERT INTO events (at, kind, device_id, message, detail) VALUES (?, 'retention_unsynced_dropped', NULL, ?, ?)",
            (now, message, json.dumps(detail)),
        )
        report.alarm_id = _raise_alarm(conn, message, dropped, now)
    log.error(
        "retention=unsynced_dropped messages=%d bytes=%d alarm=%s",
        dropped,
        dropped_bytes,
        report.alarm_id,
    )


def _raise_alarm(conn: sqlite3.Connection, message: str, dropped: int, now: float) -> int:
    from edge.alarms import (
        raise_alarm,  # the RULES area's lifecycle: alarms + history + outbox (priority 0)
    )

    return raise_alarm(
        conn,
        rule="retention",
        device_id=None,
        severity="critical",
        message=message,
        value=float(dropped),
        now=now,
    )


def reclaim(conn: sqlite3.Connection) -> None:
    """Give free pages back to the file system and truncate the WAL, so the files shrink."""
    if conn.in_transaction:
        raise RuntimeError("reclaim() must run outside a transaction")
    # executescript steps the pragma to completion; a plain execute() frees a single page.
    conn.executescript("PRAGMA incremental_vacuum;")
    # The vacuumed pages live in the WAL until a checkpoint writes them back and truncates the file.
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


# ------------------------------------------------------------------ on a timer


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


class RetentionWorker(ThreadedLoop):
    """Runs ``apply_retention`` every ``policy.interval_s`` on its own thread and connection.

    ``policy`` is the config file's; with ``panel_settings`` the worker lays the panel's stored values
    over it at start and looks for changes every ``settings_poll_s`` (one small query), running a pass
    at once with the new policy when they change.
    """

    def __init__(
        self,
        db_path: str | Path,
        policy: RetentionPolicy,
        clock: Callable[[], float] = time.time,
        *,
        panel_settings: bool = True,
        settings_poll_s: float = 5.0,
    ):
        self.db_path = Path(db_path)
        self.base_policy = policy
        self.policy = policy
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_report: RetentionReport | None = None
        self.passes = 0
        self._settings = SettingsWatch(SETTING_KEYS) if panel_settings else None
        self._settings_poll_s = settings_poll_s

    def start(self) -> RetentionWorker:
        self._start_thread(self._run, "fieldpost-retention")
        return self

    def _run(self) -> None:
        conn = connect(self.db_path)
        try:
            while not self._stop.is_set():
                try:
                    self._follow_settings(conn)
                    self.last_report = apply_retention(conn, self.policy, now=self._clock())
                    self.passes += 1
                except sqlite3.Error:
                    log.exception("retention=error")
                self._wait(conn, self.policy.interval_s)
        finally:
            conn.close()

    def _follow_settings(self, conn: sqlite3.Connection) -> bool:
        """Take up the panel's values if they changed; True when the policy changed."""
        if self._settings is None:
            return False
        stored = self._settings.poll(conn)
        if stored is None:
            return False
        policy = policy_with_settings(self.base_policy, stored)
        if policy == self.policy:
            return False
        log.info(
            "retention=settings max_age_s=%s max_db_bytes=%s (config file: %s, %s)",
            policy.max_age_s,
            policy.max_db_bytes,
            self.base_policy.max_age_s,
            self.base_policy.max_db_bytes,
        )
        self.policy = policy
        return True

    def _wait(self, conn: sqlite3.Connection, delay: float) -> None:
        """Sleep until the next pass, or until the panel changes the policy (then pass at once)."""

        def policy_changed() -> bool:
            try:
                return self._follow_settings(conn)
            except sqlite3.Error:
                log.exception("retention=settings_read_failed")
                return False

        poll_s = None if self._settings is None else self._settings_poll_s
        self._sleep_unless_changed(delay, poll_s, policy_changed)


def attach(daemon: Any) -> RetentionWorker:
    """The daemon's attach point: run the ``[retention]`` policy on its own thread."""
    policy = parse_retention_config(daemon.config.section("retention"))
    worker = RetentionWorker(daemon.db_path, policy, daemon.clock).start()
    daemon.add_closer(worker.stop)
    return worker
