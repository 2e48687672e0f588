"""An update under way whose module stays silent ends: after [updates] stall_timeout_h without
progress it is failed ("no progress for N h"), audited, listed so by `modules updates`, and its
place in --max-in-flight goes to the next queued one. On real SQLite with a clock value passed
in, and through the running daemon (its timer, its writer) with a fake clock."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from edge import cli, registry
from edge import config as config_mod
from edge.daemon import Daemon
from edge.fuota import air, jobs
from edge.store import connect, transaction
from tests.conftest import wait_until
from tests.edge.edge_helpers import queue_update

NODES = ["0123456789abcd01", "0123456789abcd02", "0123456789abcd03"]
H = 3600.0


@pytest.fixture
def conn(db_path):
    c = connect(db_path)
    for dev in NODES:
        registry.add_device(c, dev, key=bytes(16), board="unix", actor="test", now=0)
    yield c
    c.close()


def _queue(conn, tmp_path, dev, *, transport="air", max_in_flight=None, now=0.0):
    return queue_update(
        conn, tmp_path, dev, dev.encode() * 10, transport=transport, max_in_flight=max_in_flight, now=now
    )


def _state(conn, job_id):
    job = jobs.get(conn, job_id)
    return job.state, job.error


def _audits(conn):
    return [
        (r[0], r[1], json.loads(r[2]))
        for r in conn.execute(
            "SELECT actor, target, detail FROM audit_log WHERE action = 'module.update.failed' ORDER BY id"
        )
    ]


def test_a_silent_update_fails_after_the_timeout_and_frees_its_place_in_flight(conn, tmp_path):
    first, second, waiting = (_queue(conn, tmp_path, d, max_in_flight=2) for d in NODES)
    assert sorted(air.offers(conn, set(NODES), now=10)) == NODES[:2]  # two under way, the third waits
    jobs.progress(conn, first, 60, now=2 * H)  # the first node asked for chunks at 2 h; the second never
    assert jobs.expire_stalled(conn, timeout_h=3, now=10 + 3 * H - 1) == []
    assert [j.id for j in jobs.expire_stalled(conn, timeout_h=3, now=10 + 3 * H)] == [second]
    assert _state(conn, second) == ("failed", "no progress for 3 h")
    assert _state(conn, first) == ("sending", None)
    assert _state(conn, waiting) == ("queued", None)  # not under way: it has no progress to lack
    assert _audits(conn) == [
        ("edge", NODES[1], {"job": second, "state": "sending", "sent": 0, "error": "no progress for 3 h"})
    ]
    # its place in flight is free: the waiting node's next reading gets the offer
    assert list(air.offers(conn, {NODES[2]}, now=3 * H + 20)) == [NODES[2]]
    assert _state(conn, waiting) == ("sending", None)
    # the first one stalls too, counted from its last progress; an ended update is never touched again
    failed = jobs.expire_stalled(conn, timeout_h=3, now=5 * H)
    assert [j.id for j in failed] == [first]
    assert [j.id for j in jobs.expire_stalled(conn, timeout_h=3, now=50 * H)] == [waiting]
    assert jobs.expire_stalled(conn, timeout_h=3, now=500 * H) == []
    assert len(_audits(conn)) == 3


def test_a_staged_update_and_a_serial_one_stall_too_and_zero_means_never(conn, tmp_path):
    staged = _queue(conn, tmp_path, NODES[0])
    serial = _queue(conn, tmp_path, NODES[1], transport="serial")
    jobs.progress(conn, staged, 0, now=0)
    jobs.staged(conn, staged, now=H)  # the node said "staged", rebooted, and was never heard again
    jobs.progress(conn, serial, 100, now=0.5 * H)  # the bridge acknowledged a chunk, then went silent
    assert jobs.expire_stalled(conn, timeout_h=0, now=1000 * H) == []
    assert jobs.expire_stalled(conn, timeout_h=1.5, now=2 * H - 1) == []
    assert [j.id for j in jobs.expire_stalled(conn, timeout_h=1.5, now=2 * H)] == [serial]
    assert jobs.expire_stalled(conn, timeout_h=1.5, now=2.5 * H)[0].id == staged
    assert _state(conn, staged) == ("failed", "no progress for 1.5 h")
    assert _state(conn, serial) == ("failed", "no progress for 1.5 h")


class FakeClock:
    def __init__(self, now: float):
        self.now = now
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now


def test_the_running_daemon_fails_a_stalled_update_and_the_cli_lists_why(db_path, conn, tmp_path):
    clock = FakeClock(1000.0)
    silent = _queue(conn, tmp_path, NODES[0], now=1000)
    moving = _queue(conn, tmp_path, NODES[1], now=1000)
    with transaction(conn):
        jobs.progress(conn, silent, 0, now=1000)
        jobs.progress(conn, moving, 0, now=1000)
    raw = {
        "edge": {"db": str(db_path)},
        "link": {"ports": [], "discover": False},
        "http": {"enabled": False},
        "updates": {"stall_timeout_h": 2, "check_interval_s": 0.05},
    }
    daemon = Daemon(config_mod.from_dict(raw), clock=clock, attach_points=()).start()
    try:
        with transaction(conn):
            jobs.progress(conn, moving, 30, now=1000 + 1.5 * H)
        with clock.lock:
            clock.now = 1000 + 2 * H
        wait_until(lambda: _state(conn, silent)[0] == "failed", what="the silent update failed")
        assert _state(conn, silent) == ("failed", "no progress for 2 h")
        assert _state(conn, moving) == ("sending", None)
        assert [a[1] for a in _audits(conn)] == [NODES[0]]
    finally:
        daemon.stop()
    config = tmp_path / "fieldpost.toml"
    config.write_text(f'[edge]\ndb = "{db_path}"\n')
    out = CliRunner().invoke(
        cli.main, ["--config", str(config), "modules", "updates"], catch_exceptions=False
    )
    line = next(x for x in out.output.splitlines() if x.split()[0] == str(silent))
    assert "failed" in line and line.endswith("no progress for 2 h")


def test_cancel_from_the_cli_is_audited_and_says_how_many(conn, db_path, tmp_path):
    queued = _queue(conn, tmp_path, NODES[1])
    config = tmp_path / "fieldpost.toml"
    config.write_text(f'[edge]\ndb = "{db_path}"\n')
    out = CliRunner().invoke(
        cli.main, ["--config", str(config), "modules", "cancel", NODES[1]], catch_exceptions=False
    )
    assert out.output.strip() == f"cancelled 1 update(s) of {NODES[1]}"
    assert _state(conn, queued)[0] == "cancelled"
    rows = conn.execute(
        "SELECT actor, target, detail FROM audit_log WHERE action = 'module.update.cancel'"
    ).fetchall()
    assert [tuple(r) for r in rows] == [("cli", NODES[1], '{"cancelled":1}')]
    # nothing left to cancel: nothing audited
    CliRunner().invoke(
        cli.main, ["--config", str(config), "modules", "cancel", NODES[1]], catch_exceptions=False
    )
    assert (
        conn.execute("SELECT count(*) FROM audit_log WHERE action = 'module.update.cancel'").fetchone()[0]
        == 1
    )
