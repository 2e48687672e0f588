"""systemd integration of the daemon, in-process: READY, WATCHDOG and STOPPING on a NOTIFY_SOCKET the
test listens on (as systemd does), and journald priority prefixes on the log lines.

The installed daemon under its real unit is tested in tests/packaging/.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
from edge_helpers import add
from edge_module_peer import ModulePeer, Node, activate

from edge import config as config_mod
from edge import logs
from edge.daemon import Daemon
from edge.store import MIGRATIONS, applied_migrations, connect
from edge.systemd_notify import Notifier, watchdog_seconds
from tests.conftest import wait_until
from tests.notify_socket import NotifyListener

NODE = "0000000000000a01"
BRIDGE = "00000000000000b0"
WATCHDOG_S = 0.3  # pings every 0.15 s


@pytest.fixture
def listener():
    sock = NotifyListener.abstract()
    yield sock
    sock.close()


@pytest.fixture
def peer(db_path):
    conn = connect(db_path)
    key = add(conn, NODE)
    nodes = activate(conn, [Node(NODE, key)])
    conn.close()
    p = ModulePeer(BRIDGE, nodes).start()
    yield p
    p.close()


def make_daemon(db_path, ports, notifier, **sections):
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db_path)},
            "link": {"ports": ports, "discover": False, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5},
            "http": {"port": 0},
            **sections,
        }
    )
    attach = ("edge.sync.service:attach",) if "sync" in sections else ()
    return Daemon(cfg, attach_points=attach, notifier=notifier)


def quiet_for(listener, seconds):
    """No WATCHDOG=1 for ``seconds`` (after letting one already on its way arrive)."""
    time.sleep(WATCHDOG_S)
    since = time.monotonic()
    time.sleep(seconds)
    return listener.pings_since(since) == 0


def test_ready_once_the_database_is_migrated_then_stopping(tmp_path):
    db = tmp_path / "new.db"
    migrated_at_ready = []

    def at_arrival(message):
        # What is true the moment READY=1 arrives: the database must be open and fully migrated.
        if message.has("READY=1"):
            conn = connect(db, readonly=True)
            try:
                migrated_at_ready.append(applied_migrations(conn))
            finally:
                conn.close()

    # a socket file, as systemd's /run/systemd/notify (in a short folder: AF_UNIX paths are short)
    short = Path(tempfile.mkdtemp(prefix="fp-notify-"))
    listener = NotifyListener(short / "notify.sock", on_message=at_arrival)
    daemon = make_daemon(db, [], Notifier(str(listener.path)))
    try:
        daemon.start()
        ready = listener.wait_for("READY=1")
        assert migrated_at_ready == [sorted(name for name, _ in MIGRATIONS)]
        assert str(db) in ready.fields["STATUS"]
        assert not listener.with_line("STOPPING=1")
        daemon.stop()
        stopping = listener.wait_for("STOPPING=1")
        assert stopping.at > ready.at
    finally:
        daemon.stop()
        listener.close()
        shutil.rmtree(short)


def test_no_ready_when_the_database_cannot_be_opened(tmp_path, listener):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    daemon = make_daemon(blocker / "fieldpost.db", [], Notifier(str(listener.path)))
    with pytest.raises(Exception):  # noqa: B017 - whatever the failure, READY must not have been sent
        daemon.start()
    daemon.stop()
    time.sleep(0.2)
    assert not listener.with_line("READY=1")


def test_watchdog_pings_stop_while_the_writer_is_wedged(db_path, listener, peer):
    daemon = make_daemon(db_path, [peer.path], Notifier(str(listener.path), watchdog_s=WATCHDOG_S))
    daemon.start()
    gate = threading.Event()
    try:
        listener.wait_for("READY=1")
        wait_until(lambda: listener.pings_since(0) >= 3, what="watchdog pings")
        peer.add_reading(NODE)
        wait_until(lambda: len(peer.log.acked) == 1, what="a reading stored")

        # Test hook: a call that blocks the single writer thread, as a hung fsync would.
        daemon.ingest.submit_call(lambda conn, now: gate.wait(30))
        assert quiet_for(listener, 4 * WATCHDOG_S), "pings went on while the writer was wedged"
        assert daemon.ingest.running  # alive as a thread: only the round trip shows it is stuck

        gate.set()
        released = time.monotonic()
        listener.wait_for("WATCHDOG=1", timeout=5, after=released)
    finally:
        gate.set()
        daemon.stop()
    stopped = listener.wait_for("STOPPING=1")
    assert quiet_for(listener, 3 * WATCHDOG_S)
    assert stopped.at > released


def test_watchdog_pings_stop_when_the_link_thread_ends(db_path, listener, peer):
    daemon = make_daemon(db_path, [peer.path], Notifier(str(listener.path), watchdog_s=WATCHDOG_S))
    daemon.start()
    try:
        wait_until(lambda: listener.pings_since(0) >= 2, what="watchdog pings")
        daemon.manager.stop()  # the link supervisor thread is gone
        assert quiet_for(listener, 4 * WATCHDOG_S)
    finally:
        daemon.stop()


def test_watchdog_pings_stop_when_the_sync_thread_ends(db_path, listener):
    with socket.socket() as s:  # a loopback port nobody listens on: sync keeps backing off, alive
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    mqtt = {"host": "127.0.0.1", "port": closed_port, "tls": {"enabled": False}}
    sync = {"site": "t", "backoff_initial_s": 0.05, "backoff_max_s": 0.2, "mqtt": mqtt}
    daemon = make_daemon(db_path, [], Notifier(str(listener.path), watchdog_s=WATCHDOG_S), sync=sync)
    daemon.start()
    try:
        wait_until(lambda: listener.pings_since(0) >= 2, what="watchdog pings with sync running")
        daemon.services["edge.sync.service"].stop()
        assert quiet_for(listener, 4 * WATCHDOG_S)
    finally:
        daemon.stop()


def test_no_socket_no_messages_and_watchdog_only_for_this_pid():
    quiet = Notifier.from_env({})
    assert not quiet.enabled and not quiet.ready() and not quiet.start_watchdog({"x": lambda: True})
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "junk"}) is None


def log_lines(stream_env, stream):
    logger = logging.getLogger("fieldpost.test")
    old_env = os.environ.get("JOURNAL_STREAM")
    os.environ.update(stream_env)
    try:
        logs.setup("DEBUG", stream=stream)
        logger.debug("d")
        logger.info("i")
        logger.warning("w")
        logger.error("e")
        logger.critical("c")
    finally:
        os.environ.pop("JOURNAL_STREAM", None)
        if old_env is not None:
            os.environ["JOURNAL_STREAM"] = old_env
        logs.setup("INFO")


def test_priority_prefixes_only_on_the_journal_stream(tmp_path):
    journal = tmp_path / "journal-stream"  # stands in for the socket: what counts is device and inode
    with open(journal, "w") as stream:
        st = os.fstat(stream.fileno())
        log_lines({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream)
    prefixes = [line[:3] for line in journal.read_text().splitlines()]
    assert prefixes == ["<7>", "<6>", "<4>", "<3>", "<2>"]

    other = tmp_path / "redirected"  # a child whose stdout went elsewhere inherits the variable only
    with open(other, "w") as stream:
        log_lines({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream)
    assert all(line.startswith("level=") for line in other.read_text().splitlines())

    buffer = io.StringIO()  # no file descriptor at all
    log_lines({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, buffer)
    assert buffer.getvalue().startswith("level=debug")
