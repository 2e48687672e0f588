"""Power cut: no ACK for an UPLINK leaves the edge before the WAL holding its commit is on disk.

The kill -9 tests keep the OS page cache alive; a power cut does not. What makes an ACKed
reading survive one is the order of system calls: the SQLite WAL is fsynced/fdatasynced
(WAL + synchronous=FULL) before the ACK is written to the serial port. These tests watch
the real daemon's syscalls with strace while a module peer on a pty sends real uplinks
(real MICs), and check that order for every ACK. A control run of a small program that
ACKs after commits with synchronous=OFF/NORMAL shows the checker does catch the bad order.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from edge_helpers import add
from edge_module_peer import ModulePeer, Node, activate
from syscall_trace import TRACED, check_acks_after_wal_sync

from edge.store import connect
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parents[2]
STRACE = "/usr/bin/strace"
NODES = ["0000000000000d01", "0000000000000d02", "0000000000000d03"]
READINGS = 300
STRING_BYTES = "1024"  # whole ACK writes must be in the log to decode them (the check fails if cut)


def strace_cmd(trace: Path) -> list[str]:
    return [STRACE, "-f", "-tt", "-y", "-xx", "-s", STRING_BYTES, "-e", f"trace={TRACED}", "-o", str(trace)]


def strace_can_trace() -> str | None:
    """None when strace can ptrace a child here, else why not."""
    if not os.path.exists(STRACE):
        return f"{STRACE} is not installed"
    probe = subprocess.run([STRACE, "-f", "-o", os.devnull, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"strace cannot ptrace here: {probe.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module", autouse=True)
def need_strace():
    reason = strace_can_trace()
    if reason is not None:
        pytest.skip(reason)


def traced_child(strace_pid: int, program: str, timeout: float = 10.0) -> int:
    """The pid of the program strace started: its child that has exec'd ``program``.

    strace also forks short-lived children of its own at start-up (feature probes), which
    carry strace's own command line until they exit; only the tracee has exec'd ``program``.
    """
    children = Path(f"/proc/{strace_pid}/task/{strace_pid}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in children.read_text().split():
            try:
                argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
            except FileNotFoundError:
                continue  # a probe that has exited meanwhile
            if argv0 == program.encode():
                return int(pid)
        time.sleep(0.01)
    raise AssertionError(f"strace started no {program}")


def test_every_uplink_ack_follows_the_wal_fsync_of_its_commit(db_path, db, tmp_path, record_property):
    keys = {dev: add(db, dev) for dev in NODES}
    peer = ModulePeer("00000000000000d0", activate(db, [Node(d, k) for d, k in keys.items()])).start()
    for i in range(READINGS):
        peer.add_reading(NODES[i % len(NODES)])
    cfg = tmp_path / "fieldpost.toml"
    cfg.write_text(
        f'[edge]\ndb = "{db_path}"\nservices = false\n[link]\nports = ["{peer.path}"]\ndiscover = false\n'
        '[http]\nenabled = false\n[log]\nlevel = "WARNING"\n'
    )
    trace = tmp_path / "edge.strace"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with (tmp_path / "edge.log").open("wb") as edge_log:
        tracer = subprocess.Popen(
            strace_cmd(trace) + [sys.executable, "-m", "edge.daemon", "--config", str(cfg)],
            cwd=tmp_path,
            env=env,
            stdout=edge_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # strace and the daemon in a group of their own, for the cleanup
        )
        try:
            daemon = traced_child(tracer.pid, sys.executable)
            wait_until(
                lambda: peer.pending == 0 and len(peer.log.acked) == READINGS, 25, what="every reading ACKed"
            )
            os.kill(daemon, signal.SIGTERM)
            assert tracer.wait(15) == 0  # strace exits with the daemon's status: a clean stop
        finally:
            # A killed strace detaches and leaves its tracee running: kill the whole group.
            if tracer.poll() is None:
                os.killpg(tracer.pid, signal.SIGKILL)
                tracer.wait()
            peer.close()

    report = check_acks_after_wal_sync(
        trace.read_text(),
        port_path=peer.path,
        db_path=str(db_path),
        devices={n.devaddr: n.device_id for n in peer.nodes.values()},
    )
    check = connect(db_path, readonly=True)
    try:
        stored_in_db = {(r[0], r[1]) for r in check.execute("SELECT device_id, fcnt FROM reading_list")}
    finally:
        check.close()
    ratio = report.wal_syncs / max(1, len(report.stored))
    record_property("wal_syncs", report.wal_syncs)
    record_property("acked_stored", len(report.stored))
    record_property("wal_syncs_per_reading", round(ratio, 3))
    figures = (
        f"uplinks read={report.uplinks_read} acks={len(report.acks)} stored acks={len(report.stored)} "
        f"wal writes={report.wal_writes} wal syncs={report.wal_syncs} syncs/reading={ratio:.3f}"
    )
    assert report.acks, f"no ACK of an UPLINK found in the trace ({figures})"
    assert not report.violations, "\n".join(
        [f"{len(report.violations)} ACKs before their WAL was synced ({figures}):"]
        + [f"  {v.ack.reading} seq={v.ack.seq}: {v.why}" for v in report.violations[:10]]
    )
    # The ACKs seen on the wire are the readings in the file, and the ones the module logged.
    stored_acked_by_peer = {key for key, result in peer.log.acked.items() if result == 0}
    assert report.stored == stored_in_db == stored_acked_by_peer, figures
    assert len(stored_in_db) == READINGS, figures
    # Group commit is real: one WAL sync covers several readings.
    assert 0 < report.wal_syncs < len(report.stored), figures


CONTROL = """
import os, sqlite3, sys, tty
from edge.link.frame import Deframer, FrameType, encode
from edge.radio import build_serial_uplink, build_uplink, parse_frame, parse_serial_uplink

db, synchronous, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
master, slave = os.openpty()
tty.setraw(slave)
print(os.ttyname(slave), flush=True)
conn = sqlite3.connect(db, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute(f"PRAGMA synchronous={synchronous}")
conn.execute("CREATE TABLE readings (device_id TEXT, fcnt INTEGER, PRIMARY KEY (device_id, fcnt))")
key, device = bytes(16), "0000000000000e01"
deframer = Deframer()
for fcnt in range(1, count + 1):
    radio = build_uplink(key, device, fcnt, 1, bytes([1, 0x67, 0, 0xd7]))
    os.write(master, encode(FrameType.UPLINK, fcnt, build_serial_uplink(radio)))
    frames = []
    while not frames:
        frames = deframer.feed(os.read(slave, 4096))
    for frame in frames:
        up = parse_frame(parse_serial_uplink(frame.payload).frame)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO readings VALUES (?, ?)", (up.device_id, up.fcnt))
        conn.execute("COMMIT")
        os.write(slave, encode(FrameType.ACK, frame.seq, bytes([0])))  # "stored"
        os.read(master, 4096)  # drain, so the pty never fills
"""


def run_control(tmp_path: Path, synchronous: str, count: int = 40):
    script = tmp_path / "ack_after_commit.py"
    script.write_text(CONTROL)
    db = tmp_path / f"control-{synchronous}.db"
    trace = tmp_path / f"control-{synchronous}.strace"
    done = subprocess.run(
        strace_cmd(trace) + [sys.executable, str(script), str(db), synchronous, str(count)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    port = done.stdout.split()[0]
    return check_acks_after_wal_sync(trace.read_text(), port_path=port, db_path=str(db)), count


@pytest.mark.parametrize("synchronous", ["OFF", "NORMAL"])
def test_checker_catches_acks_sent_before_the_wal_is_synced(tmp_path, synchronous):
    # WAL with synchronous=OFF never syncs; NORMAL syncs only at checkpoints: in both a
    # committed reading can still be in the page cache when its ACK goes out.
    report, count = run_control(tmp_path, synchronous)
    assert len(report.acks) == count and len(report.stored) == count
    assert len(report.violations) == count, [v.why for v in report.violations[:3]]


def test_checker_passes_the_same_program_with_synchronous_full(tmp_path):
    # The control program itself is fine once its commits are durable: the checker is not
    # simply failing every trace of this shape.
    report, count = run_control(tmp_path, "FULL")
    assert len(report.stored) == count
    assert report.wal_syncs >= count
    assert not report.violations, [v.why for v in report.violations[:3]]
