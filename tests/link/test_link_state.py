"""The link state machines under a fake clock: the edge's Session against a module end that
is either a second Session (module behaviour, yields=False) or the firmware's fp.link.Link
run on CPython. The same scenarios under the real micropython are in test_link_pty.py."""

from __future__ import annotations

import json
import random
import zlib

import pytest
from cobs import cobs

from edge.link.frame import FrameType, NackReason, encode

from .linksim import edge_end, make_wire

KINDS = ["session", "firmware"]
UP, DOWN, STATUS = FrameType.UPLINK, FrameType.DOWNLINK, FrameType.STATUS


def payloads(n: int, tag: str = "u") -> list[bytes]:
    return [f"{tag}{i:05d}".encode() for i in range(n)]


class Feeder:
    """Offers items to an end as fast as its window allows (back-pressure, nothing dropped)."""

    def __init__(self, end, ftype: int, items: list[bytes]):
        self.end, self.ftype, self.items, self.next = end, ftype, items, 0

    def __call__(self) -> None:
        while self.next < len(self.items) and self.end.can_send():
            self.end.send(self.ftype, self.items[self.next], self.next)
            self.next += 1


def run_with(wire, feeders, until, seconds):
    def step_until():
        for feed in feeders:
            feed()
        return until()

    return wire.run(seconds, step_until)


def handshake(wire, *, module_first=True):
    if module_first:
        wire.module.connect()
    wire.edge.connect()
    assert wire.run(60, lambda: wire.edge.up and wire.module.up), "no session"


@pytest.mark.parametrize("kind", KINDS)
def test_handshake_exchanges_identity_and_numbers(kind):
    wire = make_wire(kind)
    handshake(wire)
    assert wire.edge.sessions[-1]["id"] == "0123456789abcdef"
    assert wire.edge.sessions[-1]["role"] == "bridge" and wire.edge.sessions[-1]["board"] == "unix"
    assert wire.module.sessions[-1]["edge"] == "0.1.0"
    assert len(wire.edge.sessions) == 1 and len(wire.module.sessions) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_clean_exchange_both_directions(kind):
    wire = make_wire(kind)
    handshake(wire)
    ups, downs = payloads(300, "u"), payloads(100, "d")
    feeders = [Feeder(wire.module, UP, ups), Feeder(wire.edge, DOWN, downs)]
    assert run_with(wire, feeders, lambda: len(wire.module.acked) == 300 and len(wire.edge.acked) == 100, 30)
    assert [p for _, p in wire.edge.delivered] == ups
    assert [p for _, p in wire.module.delivered] == downs
    assert sorted(t for t, _ in wire.module.acked) == list(range(300))
    assert wire.module.acked[0][1] == b"ok:" + ups[0][:8]  # result bytes reach the sender


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "faults",
    [
        {"loss": 0.1},
        {"dup": 0.1, "reorder": 0.1},
        {"byte_error": 0.01},
        {"loss": 0.05, "dup": 0.05, "reorder": 0.05, "byte_error": 0.002},
    ],
    ids=["loss", "dup+reorder", "byte-errors", "everything"],
)
def test_faulty_channel_delivers_everything_in_order_once(kind, faults):
    wire = make_wire(kind, seed=7, **faults)
    handshake(wire)
    sessions = (len(wire.edge.sessions), len(wire.module.sessions))
    ups, downs = payloads(200, "u"), payloads(50, "d")
    feeders = [Feeder(wire.module, UP, ups), Feeder(wire.edge, DOWN, downs)]
    done = run_with(wire, feeders, lambda: len(wire.module.acked) == 200 and len(wire.edge.acked) == 50, 300)
    assert done, (len(wire.module.acked), len(wire.edge.acked))
    # one session throughout (no faults bad enough for a link-down), so exactly once, in order
    assert (len(wire.edge.sessions), len(wire.module.sessions)) == sessions
    assert [p for _, p in wire.edge.delivered] == ups
    assert [p for _, p in wire.module.delivered] == downs


@pytest.mark.parametrize("kind", KINDS)
def test_window_is_the_smaller_of_the_two_and_back_pressure_applies(kind):
    wire = make_wire(kind, edge_kw={"window": 2}, module_kw={"window": 8})
    for i in range(8):  # queued before any session: allowed up to the module's own window
        wire.module.send(UP, b"early%d" % i, i)
    assert not wire.module.can_send()
    with pytest.raises(OverflowError):
        wire.module.send(UP, b"one too many")
    wire.edge.auto_ack = False
    handshake(wire, module_first=False)
    wire.run(0.2)
    assert len(wire.edge.delivered) == 2  # the edge announced win=2: only two on the wire
    for seq in wire.edge.pending:
        wire.edge.impl.ack(seq)
    wire.edge.auto_ack = True
    wire.edge.pending.clear()
    assert wire.run(10, lambda: len(wire.module.acked) == 2)  # pending ones acked; then auto
    assert wire.run(10, lambda: len(wire.module.acked) == 8)
    assert [p for _, p in wire.edge.delivered][:8] == [b"early%d" % i for i in range(8)]


@pytest.mark.parametrize("kind", KINDS)
def test_gap_nack_resends_before_the_rto(kind):
    wire = make_wire(kind)
    handshake(wire)
    wire.up.lose_next = 1  # the first data frame
    for i in range(4):
        wire.module.send(UP, b"g%d" % i, i)
    start = wire.clock.t
    assert wire.run(1, lambda: len(wire.edge.delivered) == 4)
    assert wire.clock.t - start < 0.2, "recovered by GAP, not by the 300 ms RTO"
    assert [p for _, p in wire.edge.delivered] == [b"g0", b"g1", b"g2", b"g3"]
    assert wire.edge.impl.counters.gaps_rx >= 1
    assert len(wire.up.lost) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_lost_ack_is_answered_from_the_reply_cache(kind):
    wire = make_wire(kind)
    handshake(wire)
    wire.down.cut = True  # the edge's ACK never arrives
    wire.module.send(UP, b"once", 1)
    wire.run(0.1)
    assert [p for _, p in wire.edge.delivered] == [b"once"]
    wire.down.cut = False
    assert wire.run(5, lambda: wire.module.acked)
    assert [p for _, p in wire.edge.delivered] == [b"once"]  # the resend was a duplicate
    assert wire.edge.impl.counters.duplicates_rx >= 1
    assert wire.module.acked == [(1, b"ok:once")]


@pytest.mark.parametrize("kind", KINDS)
def test_pending_ack_is_not_invented_for_a_duplicate(kind):
    wire = make_wire(kind)
    handshake(wire)
    wire.edge.auto_ack = False  # "not durable yet"
    wire.module.send(UP, b"slow", 1)
    wire.run(2)  # several RTO resends arrive as duplicates
    assert wire.module.acked == [] and len(wire.edge.delivered) == 1
    wire.edge.impl.ack(wire.edge.pending.pop())
    assert wire.run(2, lambda: wire.module.acked)
    assert len(wire.edge.delivered) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_busy_receiver_keeps_frames_and_backoff_does_not_count_toward_link_down(kind):
    busy = {"until": 0.0}
    wire = make_wire(kind)
    wire.edge.impl._busy = lambda: "ingest queue full" if wire.clock.t < busy["until"] else None
    handshake(wire)
    busy["until"] = wire.clock.t + 20.0  # longer than 10 RTO expiries would take
    ups = payloads(20)
    assert run_with(wire, [Feeder(wire.module, UP, ups)], lambda: len(wire.module.acked) == 20, 120)
    assert wire.module.lost == []  # BUSY is not silence
    assert [p for _, p in wire.edge.delivered] == ups
    assert wire.edge.impl.counters.nacks_tx.get("BUSY", 0) >= 2


@pytest.mark.parametrize("kind", KINDS)
def test_refused_frames_are_dropped_and_reported(kind):
    wire = make_wire(kind)

    def refuse_bad(end, ftype, seq, payload):
        if payload == b"bad":
            end.nack(seq, NackReason.INVALID, "malformed reading")
        else:
            end.impl.ack(seq)

    wire.edge.on_received = refuse_bad
    handshake(wire)
    wire.module.send(UP, b"good1", "t1")
    wire.module.send(UP, b"bad", "t2")
    wire.module.send(0x20, b"from the future", "t3")  # sequenced, not accepted by the edge
    wire.module.send(UP, b"good2", "t4")
    assert wire.run(5, lambda: len(wire.module.acked) == 2 and len(wire.module.refused) == 2)
    assert sorted(t for t, _ in wire.module.acked) == ["t1", "t4"]
    refused = {t: (r, text) for t, r, text in wire.module.refused}
    assert refused["t2"] == (NackReason.INVALID, "malformed reading")
    assert refused["t3"][0] == NackReason.UNSUPPORTED
    wire.run(2)
    assert len(wire.edge.delivered) == 3  # refused frames are consumed, never retried


@pytest.mark.parametrize("kind", KINDS)
def test_crossed_hellos_settle_on_one_session(kind):
    for seed in range(10):
        wire = make_wire(kind, seed=seed)
        wire.module.connect()
        wire.edge.connect()  # both HELLOs are on the wire at once
        assert wire.run(5, lambda w=wire: w.edge.up and w.module.up)
        wire.run(3)  # let any late HELLO retries play out
        ups, downs = payloads(30, "u"), payloads(30, "d")
        feeders = [Feeder(wire.module, UP, ups), Feeder(wire.edge, DOWN, downs)]
        assert run_with(
            wire, feeders, lambda w=wire: len(w.module.acked) == 30 and len(w.edge.acked) == 30, 20
        )
        assert [p for _, p in wire.edge.delivered] == ups
        assert [p for _, p in wire.module.delivered] == downs


@pytest.mark.parametrize("kind", KINDS)
def test_edge_restart_mid_stream_loses_nothing(kind):
    wire = make_wire(kind)
    handshake(wire)
    ups = payloads(100)
    feeder = Feeder(wire.module, UP, ups)
    run_with(wire, [feeder], lambda: len(wire.edge.delivered) >= 40, 10)
    # the edge process restarts: a brand-new Session on the same cable, which says HELLO

    old_delivered = list(wire.edge.delivered)
    wire.edge = edge_end(wire.clock, random.Random(99))
    wire.up.queue.clear()
    wire.edge.connect()
    assert run_with(wire, [feeder], lambda: len(wire.module.acked) == 100, 60)
    got = [p for _, p in old_delivered + wire.edge.delivered]
    # at-least-once across the restart (the application dedupes by message id) ...
    assert set(got) == set(ups)
    # ... and in order within the new session
    new = [p for _, p in wire.edge.delivered]
    assert new == sorted(new)


@pytest.mark.parametrize("kind", KINDS)
def test_silent_peer_means_link_down_then_renumbered_resend(kind):
    wire = make_wire(kind)
    handshake(wire)
    first_isn = wire.edge.sessions[-1]["isn"]
    wire.up.cut = wire.down.cut = True
    for i in range(3):
        wire.module.send(UP, b"r%d" % i, i)
    assert wire.run(60, lambda: wire.module.lost), "no link-down after 10 expiries"
    assert not wire.module.up
    wire.up.cut = wire.down.cut = False
    assert wire.run(10, lambda: len(wire.module.acked) == 3)
    assert [p for _, p in wire.edge.delivered] == [b"r0", b"r1", b"r2"]
    assert len(wire.edge.sessions) == 2 and wire.edge.sessions[-1]["isn"] != first_isn


@pytest.mark.parametrize("kind", KINDS)
def test_frames_before_a_session_get_no_session_then_flow(kind):
    wire = make_wire(kind)
    # the module thinks a session is up (it answered a HELLO whose HELLO_ACK was lost)
    wire.edge.connect()
    wire.down.cut = False
    wire.up.cut = True
    wire.run(0.05)  # module got HELLO, answered (lost), started
    assert wire.module.up and not wire.edge.up
    wire.up.cut = False
    wire.edge.impl._hello_due = None  # the edge gave up on its HELLO
    wire.module.send(UP, b"x", "x")
    assert wire.run(10, lambda: wire.module.acked)
    assert wire.edge.impl.counters.nacks_tx.get("NO_SESSION", 0) >= 1
    assert [p for _, p in wire.edge.delivered] == [b"x"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "hello",
    [
        b"not json",
        b"[1,2]",
        b'{"win":8}',
        b'{"isn":"x"}',
        b'{"isn":Infinity}',
        b'{"isn":-1}',
        b'{"isn":1,"win":NaN}',
        b'{"isn":1,"win":0}',
        b"\xff\xfe",
    ],
)
def test_bad_hello_is_counted_not_answered_and_does_not_raise(kind, hello):
    for side in ("edge", "module"):
        wire = make_wire(kind)
        end = getattr(wire, side)
        end.receive(encode(FrameType.HELLO, 0, hello))
        assert end.take_output() == b""  # no HELLO_ACK for a HELLO we cannot start from
        assert not end.up


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_version_gets_a_version_nack_and_the_link_carries_on(kind):
    wire = make_wire(kind)
    handshake(wire)
    raw = bytes([2, UP, 0, 5]) + b"v2"
    raw += zlib.crc32(raw).to_bytes(4, "big")
    for end in (wire.edge, wire.module):
        end.take_output()
        end.receive(cobs.encode(raw) + b"\x00")
        out = end.take_output()
        assert encode(FrameType.NACK, 0, bytes([NackReason.VERSION, 1])) in out
    assert wire.edge.impl.counters.frame_errors["version"] == 1
    wire.module.send(UP, b"after", 1)
    assert wire.run(2, lambda: wire.module.acked)
    assert [p for _, p in wire.edge.delivered] == [b"after"]


def test_firmware_link_hello_payload_is_json_the_edge_reads():
    wire = make_wire("firmware")
    wire.module.connect()
    out = wire.module.take_output()
    from edge.link.frame import Deframer

    (frame,) = Deframer().feed(out)
    body = json.loads(frame.payload)
    assert body["proto"] == 1 and 0 <= body["isn"] <= 0xFFFF and body["win"] == 8
    assert body["role"] == "bridge"


@pytest.mark.parametrize("kind", KINDS)
def test_a_lost_ack_does_not_stall_the_stream_or_bring_the_link_down(kind):
    """Regression: ACKs are not cumulative, so while one ACK is lost the others keep the
    window open. The sequence must not run past the receiver's duplicate span (the resend
    would get NACK GAP, never the cached ACK, until a link-down duplicated the frame), and
    the ACK should come back in a round trip, not after an RTO."""
    wire = make_wire(kind)
    handshake(wire)
    wire.down.lose_next = 1  # the first ACK
    ups = payloads(300)
    feeder = Feeder(wire.module, UP, ups)
    start = wire.clock.t
    spans = []

    def until():
        unacked = wire.module.impl._unacked
        if unacked:
            first = unacked[0][3] if wire.module.firmware else unacked[0].seq
            nxt = wire.module.impl._next_seq
            spans.append((nxt - first) & 0xFFFF)
        return 0 in {t for t, _ in wire.module.acked}

    assert run_with(wire, [feeder], until, 5)
    assert wire.clock.t - start < 0.3, "the lost ACK was recovered by the RTO, not by a prod"
    assert max(spans) <= 8
    assert run_with(wire, [feeder], lambda: len(wire.module.acked) == 300, 30)
    assert wire.module.lost == [] and len(wire.edge.sessions) == 1
    assert [p for _, p in wire.edge.delivered] == ups
    assert len(wire.down.lost) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_output_batches_start_with_a_delimiter_so_a_dangling_partial_frame_costs_nothing(kind):
    wire = make_wire(kind)
    handshake(wire)
    wire.run(0.1)
    for end, peer in ((wire.module, wire.edge), (wire.edge, wire.module)):
        # the delimiter after the peer's last frame was corrupted: half a frame dangles
        end.receive(encode(UP, 1, b"x" * 20)[:-3])
        ftype = UP if peer is wire.module else DOWN
        peer.send(ftype, b"after the noise", "t")
        out = peer.take_output()
        assert out.startswith(b"\x00")
        before = len(end.delivered)
        end.receive(out)
        assert end.delivered[before:] == [(ftype, b"after the noise")]
