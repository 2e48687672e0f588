"""Scheduled backups in the daemon (its ``edge.backup.service:attach`` point).

A thread of its own (a backup of a large database takes minutes; the daemon's timer must not
wait) looks every ``check_every_s`` whether a daily or weekly backup is due, makes it
(edge.backup.copy), records it, deletes the ones beyond ``keep_<kind>``, and keeps two alarms
in step: ``backup_failed`` (critical, raised by a failed backup, cleared by the next good one)
and ``backup_overdue`` (warning, no good backup of a kind for its interval plus ``grace_s``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge import alarms
from edge.backup import records
from edge.backup.config import BackupConfig, parse_backup
from edge.backup.copy import backup_name, make_backup
from edge.backup.schedule import due, overdue, to_prune
from edge.errors import BackupError
from edge.store import connect

log = logging.getLogger("fieldpost.backup")

FAILED, OVERDUE = "backup_failed", "backup_overdue"


class BackupService:
    def __init__(
        self,
        db_path: Path,
        config: BackupConfig,
        *,
        site: str = "site",
        clock: Callable[[], float] = time.time,
    ):
        self.db_path = Path(db_path)
        self.config = config
        self.site = site
        self.clock = clock
        self.started_at = clock()
        self.stats = {"ok": 0, "failed": 0, "pruned": 0}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one round, callable from tests with their own clock ------------------------------------

    def run_due(self, now: float | None = None) -> list[str]:
        """Make every backup that is due; then update the alarms. Returns the kinds attempted."""
        now = self.clock() if now is None else now
        attempted = []
        conn = connect(self.db_path)
        try:
            for kind in self.config.kinds:
                if due(kind, records.history(conn, kind), self.config, now):
                    attempted.append(kind)
                    self._backup(conn, kind, now)
            self._update_alarms(conn, now)
        finally:
            conn.close()
        return attempted

    def _backup(self, conn: sqlite3.Connection, kind: str, now: float) -> None:
        assert self.config.directory is not None
        destination = Path(self.config.directory) / backup_name(self.site, kind, now)
        try:
            result = make_backup(self.db_path, destination, clock=self.clock)
        except BackupError as exc:
            self.stats["failed"] += 1
            log.error("backup=failed kind=%s error=%s", kind, exc)
            records.record_failed(conn, kind, str(destination), str(exc), now, self.clock())
            self._raise(conn, FAILED, "critical", f"{kind} backup failed: {exc}", now)
            return
        records.record_ok(conn, kind, result)
        self.stats["ok"] += 1
        log.info("backup=ok kind=%s path=%s bytes=%d", kind, result.path, result.bytes)
        self._clear(conn, FAILED, now)
        good = records.good(conn, kind)
        for backup_id in to_prune([(b.id, b.started_at) for b in good], self.config.keep(kind)):
            path = next(b.path for b in good if b.id == backup_id)
            try:
                Path(path).unlink(missing_ok=True)
            except OSError as exc:  # a stick gone read-only: keep the row, try again next time
                log.warning("backup=prune_failed path=%s error=%s", path, exc)
                continue
            records.mark_pruned(conn, backup_id)
            self.stats["pruned"] += 1

    def _update_alarms(self, conn: sqlite3.Connection, now: float) -> None:
        late = [
            kind
            for kind in self.config.kinds
            if overdue(kind, records.history(conn, kind), self.config, now, self.started_at)
        ]
        if late:
            self._raise(conn, OVERDUE, "warning", f"no good {' or '.join(late)} backup in time", now)
        else:
            self._clear(conn, OVERDUE, now)

    def _raise(self, conn: sqlite3.Connection, rule: str, severity: str, message: str, now: float) -> None:
        if _open_alarm(conn, rule) is None:
            alarms.raise_alarm(conn, rule=rule, device_id=None, severity=severity, message=message, now=now)

    def _clear(self, conn: sqlite3.Connection, rule: str, now: float) -> None:
        alarm_id = _open_alarm(conn, rule)
        if alarm_id is not None:
            alarms.clear(conn, alarm_id, now=now)

    # --- thread ---------------------------------------------------------------------------------

    def start(self) -> BackupService:
        self._thread = threading.Thread(target=self._loop, name="fieldpost-backup", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:  # the next round tries again
                log.exception("backup_round_failed")
            self._stop.wait(self.config.check_every_s)


def _open_alarm(conn: sqlite3.Connection, rule: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM alarms WHERE rule = ? AND state != 'cleared' ORDER BY id DESC LIMIT 1", (rule,)
    ).fetchone()
    return None if row is None else int(row[0])


def attach(daemon: Any) -> BackupService | None:
    config = parse_backup(daemon.config.extra.get("backup"))
    if config.directory is None:
        return None
    service = BackupService(daemon.db_path, config, site=daemon.config.edge.site, clock=daemon.clock).start()
    daemon.add_closer(service.stop)
    daemon.metrics_sources.extra.append(lambda: _metric_families(service))
    log.info("backup=attached directory=%s kinds=%s", config.directory, ",".join(config.kinds))
    return service


def _metric_families(service: BackupService):
    from prometheus_client.core import CounterMetricFamily

    made = CounterMetricFamily("fieldpost_backups", "Scheduled backups, by outcome", labels=["outcome"])
    for outcome, value in service.stats.items():
        made.add_metric([outcome], value)
    yield made
