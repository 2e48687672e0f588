"""Putting a backup back: look inside it (``inspect``, the dry run), then ``restore`` it.

A restore needs the daemon stopped (edge.runlock). The backup is checked, copied next to the
database as ``<db>.restoring``, migrated and checked again; only then is the current database
(with its WAL folded in) moved aside to ``<db>.before-restore-<time>`` and the copy renamed into
its place. Whatever fails before that rename leaves the current database as it was.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge import registry
from edge.backup.copy import PAGES_PER_STEP, Progress, row_counts, verify
from edge.errors import BackupError
from edge.runlock import exclusive
from edge.store import applied_migrations, connect, migrate, transaction


@dataclass(frozen=True)
class BackupContents:
    path: str
    bytes: int
    migrations: list[str]
    row_counts: dict[str, int]
    first_reading_at: float | None
    last_reading_at: float | None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def inspect(path: Path) -> BackupContents:
    """What the backup at ``path`` holds; BackupError naming it if it is missing or damaged."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(str(path), "no such backup file")
    counts = verify(path)
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        migrations = applied_migrations(conn) if "migrations" in counts else []
        first = last = None
        columns = {row[1] for row in conn.execute("PRAGMA table_info(readings)")}
        if "received_ms" in columns:
            first, last = conn.execute(
                "SELECT MIN(received_ms) / 1000.0, MAX(received_ms) / 1000.0 FROM readings"
            ).fetchone()
        elif "received_at" in columns:  # a backup from before the lean store (0008)
            first, last = conn.execute("SELECT MIN(received_at), MAX(received_at) FROM readings").fetchone()
    finally:
        conn.close()
    return BackupContents(str(path), path.stat().st_size, migrations, counts, first, last)


def restore(
    db_path: Path,
    source: Path,
    *,
    clock: Callable[[], float] = time.time,
    progress: Progress | None = None,
) -> Path | None:
    """Replace the database at ``db_path`` with the backup ``source``; return where the old one was
    put (None if there was none). DaemonRunning while the daemon runs; BackupError if ``source`` is
    not a good backup or the copy cannot be made."""
    db_path, source = Path(db_path), Path(source)
    with exclusive(db_path):
        contents = inspect(source)
        restoring = db_path.with_name(db_path.name + ".restoring")
        for leftover in (restoring, Path(f"{restoring}-wal"), Path(f"{restoring}-shm")):
            leftover.unlink(missing_ok=True)
        try:
            _copy(source, restoring, progress)
            conn = connect(restoring)
            try:
                applied = migrate(conn)
                if not applied and row_counts(conn) != contents.row_counts:
                    raise BackupError(str(source), "the restored copy does not have the backup's rows")
                now = clock()
                with transaction(conn):
                    registry.audit(
                        conn,
                        actor="cli",
                        action="db.restore",
                        target=str(db_path),
                        detail={"source": str(source)},
                        now=now,
                    )
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                conn.close()
        except BaseException:
            restoring.unlink(missing_ok=True)
            raise
        aside = _move_aside(db_path, clock()) if db_path.exists() else None
        os.replace(restoring, db_path)
        for suffix in ("-wal", "-shm"):
            Path(f"{restoring}{suffix}").unlink(missing_ok=True)
        fd = os.open(db_path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return aside


def _copy(source: Path, target: Path, progress: Progress | None) -> None:
    src = sqlite3.connect(f"file:{source.resolve()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(
                dst,
                pages=PAGES_PER_STEP,
                progress=(lambda _s, remaining, total: progress(total - remaining, total))
                if progress
                else None,
            )
        except sqlite3.Error as exc:
            raise BackupError(str(target), f"cannot write the restored copy: {exc}") from None
        finally:
            dst.close()
    finally:
        src.close()


def _move_aside(db_path: Path, now: float) -> Path:
    """Fold the WAL into the database file, then move it (and what is left beside it) aside."""
    conn = connect(db_path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    aside = db_path.with_name(
        f"{db_path.name}.before-restore-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}"
    )
    os.replace(db_path, aside)
    for suffix in ("-wal", "-shm"):
        if Path(f"{db_path}{suffix}").exists():
            os.replace(f"{db_path}{suffix}", f"{aside}{suffix}")
    return aside
