"""UDP and CoAP devices: real sockets on 127.0.0.x, the real ingest writer on a real SQLite file."""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time

import aiocoap
from aiocoap.numbers import ContentFormat
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type
from sources_helpers import DatagramDevices, LossyRelay, free_udp_port

from edge import registry
from edge.radio import HEADER, KIND_DOWNLINK, AckResult, build_uplink
from edge.sources.coap import CoapServer
from edge.sources.config import DatagramConfig
from edge.sources.counters import Counters
from edge.store import connect

DEVICES = [f"c0a8000000{i:06x}" for i in range(100)]
PER_DEVICE = 100  # 100 devices x 100 frames: 10,000 datagrams
LPP = bytes.fromhex("0367011003680a")  # temperature 27.2 C, humidity 5 %


def _register(conn, devices) -> dict[str, bytes]:
    now = time.time()
    return {dev: registry.add_device(conn, dev, actor="test", now=now) for dev in devices}


def _ack_for(data: bytes) -> tuple[tuple[str, int] | None, int]:
    """((device, fcnt) the ACK's downlink frame answers, or None, result byte)."""
    if not data:
        return None, -1
    if data[0] in (AckResult.STORED, AckResult.DUPLICATE) and len(data) >= 1 + HEADER.size:
        kind, dev, fcnt, _port = HEADER.unpack_from(data, 1)
        assert kind == KIND_DOWNLINK
        return (dev.hex(), fcnt), data[0]
    return None, data[0]


class CommitCheck:
    """On every 50th ACK, a separate connection must already see the reading: the ACK followed the commit."""

    def __init__(self, path):
        self.conn = connect(path)
        self.checked = 0

    def __call__(self, dev: str, fcnt: int) -> None:
        if (fcnt + int(dev[-2:], 16)) % 50:
            return
        row = self.conn.execute(
            "SELECT 1 FROM reading_list WHERE device_id = ? AND fcnt = ?", (dev, fcnt)
        ).fetchone()
        assert row is not None, f"{dev}:{fcnt} answered before it was committed"
        self.checked += 1


def _stored_once(path, devices, per_device) -> None:
    conn = connect(path)
    try:
        rows = conn.execute("SELECT device_id, fcnt FROM reading_list").fetchall()
    finally:
        conn.close()
    assert len(rows) == len(devices) * per_device
    assert {(r[0], r[1]) for r in rows} == {(d, f) for d in devices for f in range(1, per_device + 1)}


def _udp(store, counters, **overrides):
    from edge.sources.udp import UdpListener

    _path, _conn, ingest = store
    cfg = DatagramConfig(enabled=True, host="127.0.0.1", port=0, **overrides)
    return UdpListener(cfg, ingest, counters=counters).start()


def test_udp_ten_thousand_datagrams_with_loss_and_duplication(store):
    path, conn, _ingest = store
    keys = _register(conn, DEVICES)
    counters = Counters()
    udp = _udp(store, counters, rate_per_s=1e6, burst=10**6)
    relay = LossyRelay(udp.address, loss=0.05, dup=0.05).start()
    check = CommitCheck(path)
    try:

        def frame(dev, fcnt, _attempt):
            return build_uplink(keys[dev], dev, fcnt, 1, LPP), (dev, fcnt)

        def answer(data):
            token, result = _ack_for(data)
            return token, result in (AckResult.STORED, AckResult.DUPLICATE)

        driver = DatagramDevices(
            DEVICES, PER_DEVICE, target=relay.address, frame=frame, answer=answer, on_acked=check
        )
        driver.run(deadline_s=120)
    finally:
        relay.stop()
        udp.stop()
    _stored_once(path, DEVICES, PER_DEVICE)
    assert relay.dropped > 500 and relay.duplicated > 500 and driver.resends > 500
    assert counters.get("udp", "stored") == 10_000
    assert counters.get("udp", "duplicate") > 0  # frames whose ACK was lost, answered again, not stored again
    assert check.checked >= 150


def _coap_frame(keys):
    def frame(dev, fcnt, attempt):
        token = bytes.fromhex(dev[-6:]) + fcnt.to_bytes(4, "big") + bytes([attempt & 0xFF])
        msg = aiocoap.Message(
            code=aiocoap.POST,
            uri_path=("up",),
            payload=build_uplink(keys[dev], dev, fcnt, 1, LPP),
            content_format=ContentFormat.OCTETSTREAM,
        )
        # a device's own CoAP stack: non-confirmable, its own message id and token per attempt
        msg.mtype = Type.NON
        msg.mid = (fcnt * 131 + attempt * 7 + int(dev[-4:], 16)) & 0xFFFF
        msg.token = token
        return msg.encode(), token[:7]

    def answer(data):
        msg = aiocoap.Message.decode(data)
        return bytes(msg.token[:7]), msg.code == Code.CHANGED

    return frame, answer


def test_coap_ten_thousand_requests_with_loss_and_duplication(store):
    path, conn, ingest = store
    keys = _register(conn, DEVICES)
    counters = Counters()
    port = free_udp_port()
    server = CoapServer(
        DatagramConfig(enabled=True, host="127.0.0.1", port=port, rate_per_s=1e6, burst=10**6),
        ingest,
        counters=counters,
    ).start()
    relay = LossyRelay(("127.0.0.1", port), loss=0.05, dup=0.05, seed=5683).start()
    check = CommitCheck(path)
    try:
        frame, answer = _coap_frame(keys)
        driver = DatagramDevices(
            DEVICES, PER_DEVICE, target=relay.address, frame=frame, answer=answer, on_acked=check
        )
        driver.run(deadline_s=120)
    finally:
        relay.stop()
        server.stop()
    _stored_once(path, DEVICES, PER_DEVICE)
    assert driver.resends > 500
    assert counters.get("coap", "stored") == 10_000
    assert check.checked >= 150


def _exchange(sock: socket.socket, data: bytes, to, timeout: float = 2.0) -> bytes | None:
    sock.settimeout(timeout)
    sock.sendto(data, to)
    try:
        return sock.recv(65535)
    except TimeoutError:
        return None


def test_udp_refuses_bad_mic_replay_oversized_and_malformed_and_counts_them(store):
    path, conn, _ingest = store
    dev = DEVICES[0]
    keys = _register(conn, [dev])
    counters = Counters()
    udp = _udp(store, counters)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert _exchange(sock, build_uplink(keys[dev], dev, 7, 1, LPP), udp.address)[0] == AckResult.STORED
        # the same frame again: its ACK was lost; answered as a duplicate, stored once
        assert _exchange(sock, build_uplink(keys[dev], dev, 7, 1, LPP), udp.address)[0] == AckResult.DUPLICATE
        assert _exchange(sock, build_uplink(b"\x00" * 16, dev, 8, 1, LPP), udp.address) == bytes(
            [AckResult.BAD_MIC]
        )
        assert _exchange(sock, build_uplink(keys[dev], dev, 6, 1, LPP), udp.address) == bytes(
            [AckResult.REPLAYED]
        )
        assert _exchange(sock, build_uplink(keys[dev], dev, 7, 1, b"\x01"), udp.address) == bytes(
            [AckResult.REPLAYED]
        )
        stranger = "c0a8ffffffffffff"
        assert _exchange(sock, build_uplink(keys[dev], stranger, 1, 1, LPP), udp.address) == bytes(
            [AckResult.UNKNOWN_DEVICE]
        )
        # refused before the writer: no answer at all
        for bad in (
            b"",
            b"\x00" * 65_507,
            b"\x40" * 10,
            build_uplink(keys[dev], dev, 9, 1, LPP)[:13] + b"\x09" + LPP + b"\x00" * 4,  # port 9
        ):
            assert _exchange(sock, bad, udp.address, timeout=0.3) is None, bad[:20]
        time.sleep(0.2)
    finally:
        sock.close()
        udp.stop()
    assert counters.get("udp", "stored") == 1
    assert counters.get("udp", "duplicate") == 1
    assert counters.get("udp", "bad_mic") == 1
    assert counters.get("udp", "replayed") == 2
    assert counters.get("udp", "unknown_device") == 1
    assert counters.get("udp", "oversized") == 1
    assert counters.get("udp", "malformed") == 3  # empty, too short, a port that does not exist
    c = connect(path)
    try:
        assert [tuple(r) for r in c.execute("SELECT device_id, fcnt FROM reading_list")] == [(dev, 7)]
        assert c.execute("SELECT 1 FROM quarantine WHERE device_id = ?", (stranger,)).fetchone() is not None
    finally:
        c.close()


def test_a_flood_from_one_address_is_limited_without_slowing_the_others(store):
    path, conn, _ingest = store
    honest, noisy = DEVICES[0], DEVICES[1]
    keys = _register(conn, [honest, noisy])
    counters = Counters()
    udp = _udp(store, counters, rate_per_s=20, burst=40)
    flooder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flooder.bind(("127.0.0.2", 0))  # another address on the loopback
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stop = threading.Event()
    flooded = [0]

    def flood():
        # 5,000 valid frames a second, 250 times the address's rate (paced, so the kernel's socket
        # buffer, which no rate limit in the listener can protect, does not overflow on a slow box)
        fcnt = 1
        while not stop.is_set():
            for _ in range(50):
                flooder.sendto(build_uplink(keys[noisy], noisy, fcnt, 1, LPP), udp.address)
                fcnt += 1
            flooded[0] = fcnt - 1
            time.sleep(0.01)

    def honest_uplinks(first: int, count: int) -> list[float]:
        latencies = []
        started = time.monotonic()
        for i, fcnt in enumerate(range(first, first + count), 1):  # one at a time, 30 a second
            t0 = time.monotonic()
            reply = _exchange(sock, build_uplink(keys[honest], honest, fcnt, 1, LPP), udp.address)
            latencies.append(time.monotonic() - t0)
            assert reply is not None and reply[0] == AckResult.STORED, f"fcnt {fcnt}: {reply!r}"
            time.sleep(max(0.0, started + i / 30 - time.monotonic()))
        return latencies

    try:
        alone = honest_uplinks(1, 15)  # the baseline, in the same run: no flood
        thread = threading.Thread(target=flood, daemon=True)
        thread.start()
        time.sleep(0.2)
        started = time.monotonic()
        flooded_latencies = honest_uplinks(16, 45)
        elapsed = time.monotonic() - started + 0.2
        stop.set()
        thread.join(5)
        time.sleep(0.2)  # what is still in the socket buffer is read (and refused)
    finally:
        stop.set()
        flooder.close()
        sock.close()
        udp.stop()
    limited = counters.get("udp", "rate_limited")
    c = connect(path)
    try:
        (noisy_stored,) = c.execute(
            "SELECT count(*) FROM reading_list WHERE device_id = ?", (noisy,)
        ).fetchone()
    finally:
        c.close()
    assert flooded[0] > 3000, "the flood was not a flood"
    # the flooding address got its burst and its rate, no more; the rest was dropped and counted
    assert noisy_stored <= 40 + 20 * (elapsed + 0.5), noisy_stored
    assert limited >= flooded[0] - noisy_stored - 200, (limited, flooded[0], noisy_stored)
    # and the honest device went on as if alone: every uplink stored and answered about as fast
    base = statistics.median(alone)
    assert statistics.median(flooded_latencies) <= 3 * base + 0.05, (alone, flooded_latencies)
    assert max(flooded_latencies) < 2.0, flooded_latencies


def test_coap_refuses_a_wrong_content_format_and_bad_frames_naming_them(store):
    _path, conn, ingest = store
    dev = DEVICES[0]
    keys = _register(conn, [dev])
    counters = Counters()
    port = free_udp_port()
    server = CoapServer(
        DatagramConfig(enabled=True, host="127.0.0.1", port=port), ingest, counters=counters
    ).start()

    async def exchange():
        ctx = await aiocoap.Context.create_client_context()
        try:
            out = []
            uri = f"coap://127.0.0.1:{port}/up"
            frame = build_uplink(keys[dev], dev, 1, 1, LPP)
            for fmt, payload in (
                (ContentFormat.JSON, b'{"t": 1}'),
                (None, frame),
                (ContentFormat.OCTETSTREAM, b"\x40"),
                (ContentFormat.OCTETSTREAM, frame),
                (ContentFormat.OCTETSTREAM, build_uplink(b"k" * 16, dev, 2, 1, LPP)),
                (ContentFormat.OCTETSTREAM, build_uplink(keys[dev], dev, 1, 1, b"\x01" * 4)),  # fcnt 1 reused
                (ContentFormat.OCTETSTREAM, build_uplink(keys[dev], dev, 3, 1, b"\x00" * 300)),
                (ContentFormat.OCTETSTREAM, build_uplink(keys[dev], "c0a8ffffffffffff", 1, 1, LPP)),
            ):
                msg = aiocoap.Message(code=aiocoap.POST, uri=uri, payload=payload)
                if fmt is not None:
                    msg.opt.content_format = fmt
                response = await ctx.request(msg).response
                out.append((response.code, response.payload))
            return out
        finally:
            await ctx.shutdown()

    try:
        answers = asyncio.run(exchange())
    finally:
        server.stop()
    (c1, p1), (c2, p2), (c3, p3), (c4, p4), (c5, p5), (c6, p6), (c7, p7), (c8, p8) = answers
    assert c1 == Code.UNSUPPORTED_CONTENT_FORMAT and p1.startswith(b"content-format: 50;")
    assert c2 == Code.UNSUPPORTED_CONTENT_FORMAT and p2.startswith(b"content-format: none;")
    assert c3 == Code.BAD_REQUEST and p3 == b"frame: radio frame of 1 bytes, at least 18", p3
    assert c4 == Code.CHANGED and p4[0] == AckResult.STORED
    assert c5 == Code.UNAUTHORIZED and p5 == bytes([AckResult.BAD_MIC])
    assert c6 == Code.CONFLICT and p6 == bytes([AckResult.REPLAYED])
    assert c7 == Code.REQUEST_ENTITY_TOO_LARGE and p7 == b"datagram: 318 bytes; at most 256 are taken"
    assert c8 == Code.NOT_FOUND and p8 == bytes([AckResult.UNKNOWN_DEVICE])
    assert counters.get("coap", "content_format") == 2
    assert counters.get("coap", "malformed") == 1
    assert counters.get("coap", "oversized") == 1
    assert (counters.get("coap", "bad_mic"), counters.get("coap", "replayed")) == (1, 1)


def test_while_the_edge_is_busy_frames_are_not_taken_and_the_device_sends_again(store):
    from edge.sources.udp import UdpListener

    path, conn, ingest = store
    dev = DEVICES[0]
    keys = _register(conn, [dev])
    counters = Counters()
    why: list[str] = ["disk full: 0 MiB free"]
    cfg = DatagramConfig(enabled=True, host="127.0.0.1", port=0)
    udp = UdpListener(cfg, ingest, counters=counters, busy=lambda: why[0] if why else None).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    frame = build_uplink(keys[dev], dev, 1, 1, LPP)
    try:
        assert _exchange(sock, frame, udp.address, timeout=0.3) is None
        assert counters.get("udp", "busy") == 1
        assert connect(path).execute("SELECT count(*) FROM readings").fetchone()[0] == 0
        why.clear()  # space again: the device's resend is taken
        assert _exchange(sock, frame, udp.address)[0] == AckResult.STORED
    finally:
        sock.close()
        udp.stop()


def test_coap_answers_too_many_requests_past_an_address_rate(store):
    _path, conn, ingest = store
    dev = DEVICES[0]
    keys = _register(conn, [dev])
    counters = Counters()
    port = free_udp_port()
    cfg = DatagramConfig(enabled=True, host="127.0.0.1", port=port, rate_per_s=0.5, burst=2)
    server = CoapServer(cfg, ingest, counters=counters).start()

    async def exchange():
        ctx = await aiocoap.Context.create_client_context()
        try:
            out = []
            for fcnt in (1, 2, 3):
                msg = aiocoap.Message(
                    code=aiocoap.POST,
                    uri=f"coap://127.0.0.1:{port}/up",
                    payload=build_uplink(keys[dev], dev, fcnt, 1, LPP),
                    content_format=ContentFormat.OCTETSTREAM,
                )
                out.append((await ctx.request(msg).response).code)
            return out
        finally:
            await ctx.shutdown()

    try:
        codes = asyncio.run(exchange())
    finally:
        server.stop()
    assert codes == [Code.CHANGED, Code.CHANGED, Code.TOO_MANY_REQUESTS]
    assert counters.get("coap", "rate_limited") == 1
