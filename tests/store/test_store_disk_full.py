"""A full disk, for real: the database on a small tmpfs, a module sending readings, a file filling the
rest. Nothing ACKed is lost, the module is told BUSY (and backs off) instead of seeing its session
restarted, /health says degraded, an alarm is raised and cleared, and once space is freed the edge
takes readings again by itself — also when it started with only 4 MB of headroom."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from edge import config as config_mod
from edge import registry
from edge.daemon import Daemon
from edge.store import connect, migrate
from tests.conftest import wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")

NODES = ["00000000000000e1", "00000000000000e2", "00000000000000e3"]
BRIDGE = "00000000000000eb"
DISK_MB = 24


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path, *, leave: int = 0) -> None:
    """Write ``path`` until the file system has ``leave`` bytes free (0: until it is full)."""
    chunk = b"\0" * 65536
    with open(path, "ab") as f:
        while True:
            free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
            if free <= leave:
                break
            try:
                f.write(chunk[: max(1, min(len(chunk), free - leave))])
                f.flush()
            except OSError:
                break


def health(daemon) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{daemon.http.port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def open_alarms(db_path, rule: str) -> list:
    conn = connect(db_path, readonly=True)
    try:
        return conn.execute("SELECT id, state FROM alarms WHERE rule = ?", (rule,)).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("headroom_mb", [None, 4])
def test_disk_full_nacks_busy_degrades_alarms_and_recovers(small_disk, headroom_mb):
    from tests.edge.edge_module_peer import ModulePeer, Node, activate

    db_path = small_disk / "fieldpost.db"
    conn = connect(db_path)
    migrate(conn)
    keys = {dev: registry.add_device(conn, dev, actor="test", now=time.time()) for dev in NODES}
    nodes = activate(conn, [Node(d, k) for d, k in keys.items()])
    conn.close()
    filler = small_disk / "filler"
    if headroom_mb:
        fill(filler, leave=headroom_mb * 1024 * 1024)  # the edge starts on an almost full disk
    peer = ModulePeer(BRIDGE, nodes).start()
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db_path), "services": False},
            "link": {"ports": [peer.path], "discover": False},
            "http": {"port": 0},
            "log": {"level": "WARNING"},
        }
    )
    daemon = Daemon(cfg).start()
    sending = threading.Event()
    sending.set()
    produced: list[tuple[str, int]] = []

    def generate() -> None:
        i = 0
        while sending.is_set():
            dev = NODES[i % 3]
            produced.append((dev, peer.add_reading(dev, values=[(1, "temperature", 20 + i % 50 / 10)])))
            i += 1
            time.sleep(0.002)

    generator = threading.Thread(target=generate, daemon=True)
    try:
        wait_until(lambda: daemon.manager.links_up() == 1, timeout=10, what="the link")
        generator.start()
        wait_until(lambda: len(peer.log.acked) > 200, timeout=20, what="readings stored")
        assert health(daemon)[0] == 200

        fill(filler)  # the disk is full now
        wait_until(lambda: daemon.space.full, timeout=30, what="the edge noticing the full disk")
        status, body = health(daemon)
        assert status == 503 and body["status"] == "degraded" and "disk full" in body["reason"]
        wait_until(lambda: open_alarms(db_path, "disk_full"), timeout=10, what="the disk_full alarm")
        assert open_alarms(db_path, "disk_full")[0]["state"] == "raised"

        # While full: the module is answered BUSY (it keeps its readings and backs off), never with a
        # storm of new sessions.
        sessions, busy = peer.log.sessions, peer.log.busy_nacks_rx
        acked = len(peer.log.acked)
        time.sleep(5)
        busy_rate = (peer.log.busy_nacks_rx - busy) / 5
        assert busy_rate < 20, f"{busy_rate} BUSY NACKs/s"
        assert peer.log.sessions - sessions <= 1
        assert len(peer.log.acked) - acked < 20  # at most what fitted in the released reserve

        filler.unlink()  # an operator frees space
        wait_until(lambda: not daemon.space.full, timeout=10, what="the edge seeing space again")
        wait_until(lambda: health(daemon)[0] == 200, timeout=10, what="/health ok again")
        wait_until(
            lambda: all(a["state"] == "cleared" for a in open_alarms(db_path, "disk_full")),
            timeout=10,
            what="the alarm cleared",
        )
        more = len(peer.log.acked)
        wait_until(lambda: len(peer.log.acked) > more + 100, timeout=45, what="readings stored again")
    finally:
        sending.clear()
        if generator.is_alive():
            generator.join(5)
    try:
        wait_until(lambda: peer.pending == 0, timeout=60, what="the module's backlog drained")
    finally:
        daemon.stop()
        peer.close()
    check = connect(db_path, readonly=True)
    try:
        stored = {(r[0], r[1]) for r in check.execute("SELECT device_id, fcnt FROM reading_list")}
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        check.close()
    assert set(peer.log.acked) <= stored, "an ACKed reading is missing"
    assert set(produced) <= stored, "a reading the module held was never stored"
