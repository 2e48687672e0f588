"""One online backup: SQLite's backup API from a read snapshot, then checked, then renamed into place.

The source connection holds one read transaction for the whole copy, so the copy is the database
as of one instant and the steps never restart however fast ingest writes (in WAL mode a reader
blocks no writer). The row count of every table is taken in that same snapshot; the copy is
accepted only if ``integrity_check`` says ok and every table has exactly those rows. Until then it
is a hidden ``.partial`` file, removed on any failure, so a directory only ever holds whole,
checked backups. The database itself is only read.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import BackupError
from edge.store import connect

PAGES_PER_STEP = 256
Progress = Callable[[int, int], None]  # (pages copied, pages in all)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    row_counts: dict[str, int]
    started_at: float
    finished_at: float


def backup_name(site: str, kind: str, now: float) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"fieldpost-{site}-{kind}-{stamp}.db"


def check_directory(directory: Path, needed_bytes: int) -> None:
    """Raise BackupError naming ``directory`` if a backup of ``needed_bytes`` cannot go there."""
    if not directory.exists():
        raise BackupError(str(directory), "backup directory does not exist (is the USB stick mounted?)")
    if not directory.is_dir():
        raise BackupError(str(directory), "backup directory is not a directory")
    try:
        statvfs = os.statvfs(directory)
    except OSError as exc:
        raise BackupError(str(directory), f"cannot read the backup directory: {exc.strerror}") from None
    if statvfs.f_flag & os.ST_RDONLY:
        raise BackupError(
            str(directory),
            "backup directory is on a read-only file system (under systemd, the unit's ProtectSystem=strict"
            " makes it so unless a drop-in lists it in ReadWritePaths=; see docs/services.md)",
        )
    free = shutil.disk_usage(directory).free
    if free < needed_bytes:
        raise BackupError(
            str(directory),
            f"backup directory is full: {free} bytes free, the backup needs about {needed_bytes}",
        )


def make_backup(
    db_path: Path,
    destination: Path,
    *,
    clock: Callable[[], float] = time.time,
    progress: Progress | None = None,
) -> BackupResult:
    """Copy the database at ``db_path`` to the new file ``destination``, checked; BackupError otherwise."""
    started = clock()
    if destination.exists():
        raise BackupError(str(destination), "exists already; choose a new file")
    partial = destination.with_name(f".{destination.name}.partial")
    source = connect(db_path)  # only read; a read-only open would need the WAL index to exist
    try:
        source.execute("BEGIN")  # one snapshot for the counts and every step of the copy
        counts = row_counts(source)
        size = (
            source.execute("PRAGMA page_count").fetchone()[0]
            * source.execute("PRAGMA page_size").fetchone()[0]
        )
        check_directory(destination.parent, size)
        try:
            target = sqlite3.connect(partial)
        except sqlite3.Error as exc:
            raise _as_backup_error(destination.parent, exc) from None
        try:
            source.backup(
                target,
                pages=PAGES_PER_STEP,
                progress=(lambda _status, remaining, total: progress(total - remaining, total))
                if progress
                else None,
            )
            # a backup is one self-contained file: no WAL beside it
            target.execute("PRAGMA journal_mode=DELETE").fetchall()
        except sqlite3.Error as exc:
            target.close()
            _discard(partial)
            raise _as_backup_error(destination.parent, exc) from None
        target.close()
        source.execute("COMMIT")
    except BaseException:
        _discard(partial)
        raise
    finally:
        source.close()
    try:
        try:
            verify(partial, counts)
        except BackupError as exc:
            raise BackupError(str(destination), str(exc).split(": ", 1)[1]) from None
        _fsync(partial)
        os.replace(partial, destination)
        _fsync(destination.parent)
    except OSError as exc:
        _discard(partial)
        raise _as_backup_error(destination.parent, exc) from None
    except BaseException:
        _discard(partial)
        raise
    return BackupResult(destination, destination.stat().st_size, counts, started, clock())


def row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows in every table of the database (SQLite's own tables aside)."""
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    return {table: conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables}


def verify(path: Path, expected: dict[str, int] | None = None) -> dict[str, int]:
    """Check a backup file: integrity_check ok and, if given, exactly ``expected`` rows per table."""
    try:
        conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if result != ["ok"]:
                raise BackupError(str(path), f"integrity_check: {result[0]}")
            counts = row_counts(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(str(path), f"not a usable SQLite database: {exc}") from None
    if expected is not None and counts != expected:
        wrong = sorted(t for t in set(expected) | set(counts) if expected.get(t) != counts.get(t))
        raise BackupError(
            str(path),
            f"row counts differ from the database in {', '.join(wrong)}: "
            + json.dumps({t: [expected.get(t), counts.get(t)] for t in wrong}),
        )
    return counts


def _as_backup_error(directory: Path, exc: Exception) -> BackupError:
    text = str(exc)
    code = getattr(exc, "errno", None) or getattr(exc, "sqlite_errorcode", None)
    if code == errno.ENOSPC or "disk is full" in text or code == sqlite3.SQLITE_FULL:
        return BackupError(str(directory), "backup directory is full")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text or "read-only" in text:
        return BackupError(str(directory), f"cannot write to the backup directory ({text})")
    return BackupError(str(directory), f"backup failed: {text}")


def _discard(partial: Path) -> None:
    try:
        partial.unlink(missing_ok=True)
    except OSError:  # a read-only or vanished directory: there is nothing to remove
        pass


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
