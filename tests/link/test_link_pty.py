"""The link end to end: the real firmware (firmware/linktest.py) under the `micropython`
command with its UART on a pty, and the edge's LinkPort opening that pty with pyserial."""

from __future__ import annotations

import json
import logging
import os
import queue
import time

import pytest

from edge.link.frame import Deframer, FrameType
from edge.link.port import LinkPort, PortClosed
from edge.link.session import Acked, Received, SessionStarted
from edge.sim import CorruptingProxy, open_raw_pty

pytestmark = pytest.mark.firmware

EDGE_HELLO = {"edge": "0.1.0", "time": 1767225600}


class Collector:
    """The edge application for these tests: ACKs every frame at once and records it."""

    def __init__(self, port_ref: list):
        self.port_ref = port_ref
        self.events: queue.Queue = queue.Queue()
        self.received: list = []
        self.sessions: list[dict] = []
        self.acked: list = []

    def __call__(self, event) -> None:
        if isinstance(event, Received):
            self.received.append(event.frame)
            self.port_ref[0].ack(event.frame.seq)
        elif isinstance(event, SessionStarted):
            self.sessions.append(event.peer)
        elif isinstance(event, Acked):
            self.acked.append(event.token)
        self.events.put(event)


def open_port(path: str, **kw) -> tuple[LinkPort, Collector]:
    ref: list = [None]
    app = Collector(ref)
    port = LinkPort(path, hello=EDGE_HELLO, on_event=app, **kw)
    ref[0] = port
    port.open()
    return port, app


def counters_of(frames) -> list[int]:
    return [int.from_bytes(f.payload[:4], "big") for f in frames if f.type == FrameType.UPLINK]


def test_module_says_hello_by_itself_over_the_pty(virtual_module, wait_until):
    import serial

    vm = virtual_module("linktest.py", ["--id", "00112233445566ff"])
    ser = serial.Serial(vm.port, 921600, timeout=0.1)
    try:
        deframer = Deframer()
        frames = wait_until(lambda: deframer.feed(ser.read(512)), timeout=10, what="a frame from the module")
    finally:
        ser.close()
    hello = frames[0]
    assert hello.type == FrameType.HELLO and hello.seq == 0
    body = json.loads(hello.payload)
    assert body["id"] == "00112233445566ff"
    assert body["role"] == "linktest" and body["board"] == "unix" and body["fw"] == "0.1.0"
    assert body["proto"] == 1 and body["win"] == 8 and 0 <= body["isn"] <= 0xFFFF


def test_edge_port_starts_a_session_and_reads_frames(virtual_module, wait_until):
    vm = virtual_module("linktest.py", ["--send", "50"])
    port, app = open_port(vm.port)
    try:
        assert port.wait_up(10)
        peer = app.sessions[-1]
        assert peer["role"] == "linktest" and peer["id"] == "00000000000000ff"
        status = wait_until(lambda: [f for f in app.received if f.type == FrameType.STATUS], timeout=20)
        assert counters_of(app.received) == list(range(50))
        assert json.loads(status[0].payload)["acked"] == 50
    finally:
        port.close()


def test_echo_under_a_64k_heap(virtual_module, wait_until):
    vm = virtual_module("linktest.py", ["--echo"], heapsize="64K")
    port, app = open_port(vm.port)
    try:
        assert port.wait_up(10)
        sent = [b"down-%04d" % i + bytes(range(i % 50)) for i in range(200)]
        for i, payload in enumerate(sent):
            wait_until(port.can_send, timeout=10)
            port.send(FrameType.DOWNLINK, payload, i)
        wait_until(lambda: len(app.received) >= 200, timeout=30)
        assert [f.payload for f in app.received] == sent
        wait_until(lambda: len(app.acked) == 200, timeout=10)
        port.send(FrameType.DOWNLINK, b"?status")
        wait_until(lambda: any(f.type == FrameType.STATUS for f in app.received), timeout=10)
        status = json.loads(app.received[-1].payload)
        assert status["received"] == 201 and status["heap_free"] > 0
        assert vm.running
    finally:
        port.close()


def test_thousand_frames_through_one_percent_byte_corruption(virtual_module, wait_until):
    vm = virtual_module("linktest.py", ["--send", "1000", "--size", "4"])
    with CorruptingProxy(vm.port, 0.01, seed=2026) as proxy:
        port, app = open_port(proxy.port)
        try:
            wait_until(
                lambda: any(f.type == FrameType.STATUS for f in app.received), timeout=120, what="all 1000"
            )
            # all 1000, in order, once each (no duplicate: one session throughout)
            assert counters_of(app.received) == list(range(1000))
            status = json.loads(next(f for f in app.received if f.type == FrameType.STATUS).payload)
            assert status["sent"] == 1000 and status["acked"] == 1000
            assert proxy.corrupted > 0
            assert sum(port.counters.frame_errors.values()) > 0  # the noise was seen and rejected
        finally:
            port.close()


def test_module_reboot_starts_a_new_session(virtual_module, wait_until):
    vm = virtual_module("linktest.py", ["--echo"])
    port, app = open_port(vm.port)
    try:
        assert port.wait_up(10)
        vm.restart()  # kill -9 and boot again on the same pty, as a watchdog reset would
        wait_until(lambda: len(app.sessions) >= 2, timeout=10, what="the HELLO after the reboot")
        port.send(FrameType.DOWNLINK, b"after reboot")
        wait_until(lambda: any(f.payload == b"after reboot" for f in app.received), timeout=10)
    finally:
        port.close()


def test_bad_input_to_the_module_is_counted_and_the_link_carries_on(virtual_module, wait_until):

    vm = virtual_module("linktest.py", ["--echo"])
    port, app = open_port(vm.port)
    try:
        assert port.wait_up(10)
        vectors = json.loads((vectors_dir() / "bad_frames.json").read_text())["frames"]
        with port._lock:  # write raw bytes on the edge's own port, between frames
            for v in vectors:
                port._write(bytes.fromhex(v["wire"]))
        port.send(FrameType.DOWNLINK, b"?status")
        wait_until(lambda: any(f.type == FrameType.STATUS for f in app.received), timeout=10)
        status = json.loads(next(f for f in app.received if f.type == FrameType.STATUS).payload)
        want: dict[str, int] = {}
        for v in vectors:
            want[v["error"]] = want.get(v["error"], 0) + 1
        assert status["errors"] == want
        assert vm.running
    finally:
        port.close()


def vectors_dir():
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "vectors"


# --- the edge port on its own, fed by hand through a raw pty --------------------------------


def test_edge_port_counts_and_logs_bad_input_and_carries_on(caplog, wait_until):
    master, slave, path = open_raw_pty()
    port, _app = open_port(path)
    try:
        caplog.set_level(logging.WARNING, logger="fieldpost.link")
        vectors = json.loads((vectors_dir() / "bad_frames.json").read_text())["frames"]
        for v in vectors:
            os.write(master, bytes.fromhex(v["wire"]))
        good = json.loads((vectors_dir() / "frames.json").read_text())["frames"][0]  # a HELLO
        os.write(master, bytes.fromhex(good["wire"]))
        assert port.wait_up(5)  # the HELLO after all the garbage started a session
        want: dict[str, int] = {}
        for v in vectors:
            want[v["error"]] = want.get(v["error"], 0) + 1
        wait_until(lambda: port.counters.frame_errors == want, timeout=5)
        logged = [r.getMessage() for r in caplog.records if "frame_rejected" in r.getMessage()]
        assert any("reason=crc" in m for m in logged) and any("reason=type" in m for m in logged)
        assert not port.closed.is_set()
    finally:
        port.close()
        os.close(master)
        os.close(slave)


def test_unplug_is_reported_as_port_closed(wait_until):
    master, slave, path = open_raw_pty()
    port, app = open_port(path)
    try:
        os.close(slave)
        os.close(master)  # the pty is gone: like pulling the USB cable
        wait_until(port.closed.is_set, timeout=5, what="PortClosed")
        closed = [e for e in list(app.events.queue) if isinstance(e, PortClosed)]
        assert len(closed) == 1 and closed[0].reason.startswith("serial error")
    finally:
        port.close()
    assert port.close_reason.startswith("serial error")


def test_open_missing_port_raises_link_error(tmp_path):
    from edge.errors import LinkError

    port = LinkPort(str(tmp_path / "ttyUSB9"), hello=EDGE_HELLO)
    with pytest.raises(LinkError):
        port.open()
    port.close()


def test_close_is_idempotent_and_reports_once():
    master, slave, path = open_raw_pty()
    try:
        port, app = open_port(path)
        port.close()
        port.close()
        closed = [e for e in list(app.events.queue) if isinstance(e, PortClosed)]
        assert closed == [PortClosed("closed")]
    finally:
        os.close(master)
        os.close(slave)
    time.sleep(0)


def test_busy_edge_makes_the_firmware_back_off_and_retry(virtual_module, wait_until):
    busy_until = time.monotonic() + 1.5
    vm = virtual_module("linktest.py", ["--send", "20"])
    port, app = open_port(
        vm.port, busy=lambda: "ingest queue full" if time.monotonic() < busy_until else None
    )
    try:
        wait_until(lambda: any(f.type == FrameType.STATUS for f in app.received), timeout=20)
        assert counters_of(app.received) == list(range(20))
        assert port.counters.nacks_tx.get("BUSY", 0) >= 1
        status = json.loads(next(f for f in app.received if f.type == FrameType.STATUS).payload)
        assert status["acked"] == 20 and status["sessions"] == 1  # BUSY never looked like a dead link
    finally:
        port.close()


def test_edge_restart_resumes_with_the_unacked_frames(virtual_module, wait_until):
    vm = virtual_module("linktest.py", ["--send", "100"])
    # first edge: takes frames but never makes any durable (no ACK), then goes away
    first = LinkPort(vm.port, hello=EDGE_HELLO)
    first.open()
    try:
        wait_until(lambda: first.counters.frames_rx >= 9, timeout=10)
    finally:
        first.close()
    port, app = open_port(vm.port)  # the restarted edge says HELLO: a new session at once
    try:
        wait_until(lambda: any(f.type == FrameType.STATUS for f in app.received), timeout=30)
        assert counters_of(app.received) == list(range(100))  # renumbered, resent, in order
        status = json.loads(next(f for f in app.received if f.type == FrameType.STATUS).payload)
        assert status["acked"] == 100 and status["sessions"] >= 2
    finally:
        port.close()


def test_close_from_an_event_handler_does_not_deadlock_or_leak(wait_until):
    master, slave, path = open_raw_pty()
    ref: list[LinkPort] = []
    seen: list = []

    def on_event(event):
        seen.append(event)
        if isinstance(event, SessionStarted):
            ref[0].close()  # from the reader thread itself

    try:
        port = LinkPort(path, hello=EDGE_HELLO, on_event=on_event)
        ref.append(port)
        port.open()
        good = json.loads((vectors_dir() / "frames.json").read_text())["frames"][0]  # a HELLO
        os.write(master, bytes.fromhex(good["wire"]))
        wait_until(port.closed.is_set, timeout=5)
        wait_until(lambda: not port._thread.is_alive(), timeout=5)
        assert port._wake_r == -1 and port._wake_w == -1
        assert [type(e).__name__ for e in seen] == ["SessionStarted", "PortClosed"]
    finally:
        os.close(master)
        os.close(slave)
