"""Backup fixtures: a daemon ingesting readings as fast as a bridge sends them, small or read-only
file systems of their own."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from edge import config as config_mod
from edge import registry
from edge.daemon import Daemon
from edge.store import connect
from tests.edge.edge_module_peer import ModulePeer, Node, activate

DEVICE = "a1b2c3d4e5f60708"
BRIDGE = "b0b1b2b3b4b5b6b7"


class IngestLoad:
    """The real ingest path under load: the edge daemon (link manager, ingest writer) reads UPLINK
    frames from a CPython bridge peer on a pty (tests/edge/edge_module_peer.py), commits them and
    ACKs them. ``committed`` counts the readings the daemon has ACKed, i.e. made durable."""

    def __init__(self, db_path):
        conn = connect(db_path)
        try:
            key = registry.add_device(conn, DEVICE, name="load", actor="test", now=time.time())
            registry.add_device(conn, BRIDGE, role="bridge", actor="test", now=time.time())
            nodes = activate(conn, [Node(DEVICE, key)])
        finally:
            conn.close()
        self.peer = ModulePeer(BRIDGE, nodes, window=8).start()
        cfg = config_mod.from_dict(
            {
                "edge": {"db": str(db_path), "services": False},
                "link": {"ports": [self.peer.path], "discover": False},
                "http": {"enabled": False},
            }
        )
        self.daemon = Daemon(cfg).start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)

    @property
    def committed(self) -> int:
        return len(self.peer.log.acked)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(30)
            self.daemon.stop()
            self.peer.close()

    def _feed(self):
        while not self._stop.is_set():
            while self.peer.pending < 64:  # keep the link's window full: the edge is never idle
                self.peer.add_reading(DEVICE)
            time.sleep(0.002)


@pytest.fixture
def ingest_load(db_path):
    loads = []

    def start():
        load = IngestLoad(db_path).start()
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
