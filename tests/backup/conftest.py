"""Backup fixtures: a store under a steady write load, small or read-only file systems of their own."""

from __future__ import annotations

import subprocess
import threading

import pytest

from edge.store import connect
from tests.storekit import put_readings

DEVICE = "a1b2c3d4e5f60708"


class IngestLoad:
    """Writes batches of readings, each in its own fsync'd commit as the ingest writer does, until stopped."""

    def __init__(self, db_path, batch=50):
        self.db_path = db_path
        self.batch = batch
        self.committed = 0  # readings committed so far
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(30)

    def _run(self):
        conn = connect(self.db_path)
        try:
            while not self._stop.is_set():
                put_readings(conn, DEVICE, range(self.committed, self.committed + self.batch))
                self.committed += self.batch
                # the ingest writer waits for a batch to fill (batch_wait_ms): others get the lock between
                self._stop.wait(0.005)
        finally:
            conn.close()


@pytest.fixture
def ingest_load(db_path):
    loads = []

    def start(**kwargs):
        load = IngestLoad(db_path, **kwargs).start()
        loads.append(load)
        return load

    yield start
    for load in loads:
        load.stop()


@pytest.fixture
def mount_tmpfs(tmp_path):
    """``mount_tmpfs(name, size="64k", read_only=False)`` -> a directory on a file system of that size."""
    mounted = []

    def mount(name, size="64k", read_only=False):
        where = tmp_path / name
        where.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], check=True)
