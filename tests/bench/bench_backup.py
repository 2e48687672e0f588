"""Backup benchmark: an online, checked backup (edge.backup.copy.make_backup) of a store of readings.

Figures (``backup.json``), each next to its baseline measured in the same run on the same file:
- ``backup_s``: make_backup of the idle store: SQLite's backup API from one read snapshot, then
  ``integrity_check`` and the row count of every table in the copy, fsync, rename;
  ``verify_s``: the check alone (integrity_check + counts on the copy);
- ``baseline_file_copy_s``: what a user would do first: copy the file (shutil.copyfile, then fsync),
  which is only consistent while nothing writes, and checks nothing;
- ``backup_vs_copy``: the ratio of the two times (medians of alternating rounds, each side >= 5 s);
- ``ingest``: a writer committing batches of 50 readings (synchronous=FULL, as the ingest writer)
  with a 5 ms pause, its commits per second alone (baseline) and while make_backup runs (each
  >= 5 s), and
  whether every backup taken under that load was of one instant (its row counts checked).

Sizes: ``quick`` 100,000 readings, the full run 1,000,000.
Run alone: ``python -m tests.bench.bench_backup [--quick] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from edge.backup.copy import make_backup, verify
from edge.store import connect, migrate
from tests.storekit import put_readings

MIN_SECONDS = 5.0  # each side measured at least this long
DEVICE = "a1b2c3d4e5f60708"
LOAD_DEVICE = "0011223344556677"


def fill(db_path: Path, n: int) -> None:
    conn = connect(db_path)
    try:
        migrate(conn)
        step = 50_000
        for start in range(0, n, step):
            put_readings(conn, DEVICE, range(start, min(n, start + step)), received_at=1_800_000_000.0)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()


class Writer:
    def __init__(self, db_path: Path):
        self.db_path = db_path
        self.commits = 0
        self._next = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        conn = connect(self.db_path)
        try:
            while not self._stop.is_set():
                put_readings(conn, LOAD_DEVICE, range(self._next, self._next + 50))
                self._next += 50
                self.commits += 1
                self._stop.wait(0.005)
        finally:
            conn.close()


def commits_per_s(writer: Writer, seconds: float) -> float:
    before, t0 = writer.commits, time.perf_counter()
    time.sleep(seconds)
    return (writer.commits - before) / (time.perf_counter() - t0)


def run(out_dir: Path, quick: bool) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory(
        prefix="bench-backup-", dir=os.environ.get("FIELDPOST_BENCH_TMP")
    ) as tmp:
        work = Path(tmp)
        db_path = work / "fieldpost.db"
        fill(db_path, n)
        size = db_path.stat().st_size

        # Each side for at least MIN_SECONDS, in alternating rounds (neither always finds the file
        # in the page cache the other just read); the median round is reported.
        copies, backups, verifies = [], [], []
        while sum(copies) < MIN_SECONDS or sum(backups) < MIN_SECONDS:
            t0 = time.perf_counter()
            shutil.copyfile(db_path, work / "plain-copy.db")
            fd = os.open(work / "plain-copy.db", os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            copies.append(time.perf_counter() - t0)
            (work / "plain-copy.db").unlink()
            t0 = time.perf_counter()
            result = make_backup(db_path, work / "backup.db")
            backups.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            verify(work / "backup.db", result.row_counts)
            verifies.append(time.perf_counter() - t0)
            (work / "backup.db").unlink()
        copy_s, backup_s, verify_s = (statistics.median(v) for v in (copies, backups, verifies))

        writer = Writer(db_path).start()
        try:
            alone = commits_per_s(writer, MIN_SECONDS)
            rounds, consistent = 0, True
            before, t0 = writer.commits, time.perf_counter()
            while rounds < 3 or time.perf_counter() - t0 < MIN_SECONDS:
                try:
                    make_backup(db_path, work / f"loaded-{rounds}.db")
                except Exception:  # a copy that fails its row-count check: reported, not hidden
                    consistent = False
                (work / f"loaded-{rounds}.db").unlink(missing_ok=True)
                rounds += 1
            during = (writer.commits - before) / (time.perf_counter() - t0)
        finally:
            writer.stop()
    figures = {
        "quick": quick,
        "readings": n,
        "db_bytes": size,
        "rounds": len(backups),
        "backup_s": round(backup_s, 4),
        "verify_s": round(verify_s, 4),
        "baseline_file_copy_s": round(copy_s, 4),
        "backup_vs_copy": round(backup_s / copy_s, 2) if copy_s else None,
        "ingest": {
            "baseline_commits_per_s_alone": round(alone, 1),
            "commits_per_s_during_backups": round(during, 1),
            "backups_under_load": rounds,
            "every_backup_of_one_instant": consistent,
        },
    }
    (out_dir / "backup.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    args = parser.parse_args()
    print(json.dumps(run(args.out, args.quick), indent=2))
