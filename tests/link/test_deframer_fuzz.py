"""Property-based fuzzing of the edge's Deframer (edge/link/frame.py).

Whatever bytes arrive, feed() never raises, never yields a frame that differs from one
that was sent (a frame with a wrong CRC would), and the first intact frame after a
delimiter that follows the garbage is decoded: at most one frame is lost to a corruption.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.link.frame import MAX_PAYLOAD, Deframer, FrameType, encode

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

frame_types = st.sampled_from([int(t) for t in FrameType] + [0x20, 0x7F])
frames = st.tuples(frame_types, st.integers(0, 0xFFFF), st.binary(max_size=MAX_PAYLOAD))
marker = encode(FrameType.LOG, 0xBEEF, b'{"lvl":"info","msg":"marker"}')


def feed_in_chunks(deframer: Deframer, data: bytes, cuts: list[int]) -> list:
    out, start = [], 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        out += deframer.feed(data[start:cut])
        start = cut
    return out


def is_sent(frame, sent: set) -> bool:
    return (frame.type, frame.seq, frame.payload) in sent


@SETTINGS
@given(st.binary(max_size=3000), st.lists(st.integers(0, 4000), max_size=8))
def test_random_bytes_never_raise_and_resync(garbage, cuts):
    deframer = Deframer()
    got = feed_in_chunks(deframer, garbage + b"\x00" + marker, cuts)
    # nothing invented from random bytes (a CRC-32 collision is 2**-32 per candidate),
    # and the marker after the garbage's delimiter is decoded
    assert got == [deframer_frame(marker)]
    assert set(deframer.errors) <= {"cobs", "short", "overlong", "crc", "version", "type"}


def deframer_frame(wire: bytes):
    (frame,) = Deframer().feed(wire)
    return frame


@SETTINGS
@given(st.lists(frames, min_size=1, max_size=6), st.data())
def test_corrupted_stream_yields_only_sent_frames(sent_frames, data):
    wire = bytearray(b"".join(encode(t, s, p) for t, s, p in sent_frames))
    mutation = data.draw(st.sampled_from(["flip", "truncate", "insert", "drop"]))
    n = data.draw(st.integers(1, 8))
    for _ in range(n):
        if not wire:
            break
        i = data.draw(st.integers(0, len(wire) - 1))
        if mutation == "flip":
            wire[i] ^= 1 << data.draw(st.integers(0, 7))
        elif mutation == "truncate":
            del wire[i:]
        elif mutation == "insert":
            wire[i:i] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            del wire[i]
    sent = {(t, s, bytes(p)) for t, s, p in sent_frames}
    deframer = Deframer()
    cuts = data.draw(st.lists(st.integers(0, 6000), max_size=5))
    got = feed_in_chunks(deframer, bytes(wire) + b"\x00" + marker, cuts)
    for frame in got[:-1]:
        # a frame with a wrong CRC would be one that was never sent
        assert is_sent(frame, sent), "decoder yielded a frame that was never sent"
    assert got[-1] == deframer_frame(marker), "no resync on the first intact frame"


@SETTINGS
@given(st.lists(frames, min_size=2, max_size=5), st.integers(0, 4), st.integers(1, 30))
def test_truncated_frame_costs_at_most_that_frame(sent_frames, which, keep):
    which %= len(sent_frames)
    pieces = [encode(t, s, p) for t, s, p in sent_frames]
    cut = pieces[which][: min(keep, len(pieces[which]) - 1)]  # lose its tail and its delimiter
    wire = b"".join(pieces[:which]) + cut + b"".join(pieces[which + 1 :])
    got = Deframer().feed(wire)
    expected = [(t, s, bytes(p)) for t, s, p in sent_frames]
    # the truncated frame merges with the next one and both are lost; every other one arrives
    lost = {which, which + 1}
    assert [(f.type, f.seq, f.payload) for f in got] == [e for i, e in enumerate(expected) if i not in lost]


@SETTINGS
@given(st.binary(min_size=1, max_size=2000))
def test_feed_accepts_any_chunking_without_raising(data):
    deframer = Deframer()
    for i in range(0, len(data), 7):
        deframer.feed(data[i : i + 7])
    deframer.feed(b"\x00")
    assert sum(deframer.errors.values()) <= data.count(0) + 2
