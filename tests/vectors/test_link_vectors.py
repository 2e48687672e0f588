"""Golden vectors of the serial link (docs/protocol.md section 6) on both codecs and both
interpreters: the edge codec on CPython, the firmware codec on CPython and under the real
`micropython` command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cobs import cobs

from edge.errors import FrameError
from edge.link.frame import Deframer, decode, encode
from edge.sim import FIRMWARE_DIR, find_micropython

from . import make_vectors

HERE = Path(__file__).resolve().parent
FRAMES = json.loads((HERE / "frames.json").read_text())["frames"]
BAD = json.loads((HERE / "bad_frames.json").read_text())["frames"]
COBS = json.loads((HERE / "cobs.json").read_text())["cases"]


def by_name(vectors):
    return pytest.mark.parametrize("v", vectors, ids=[v["name"] for v in vectors])


def test_checked_in_vectors_match_the_generator():
    for name, doc in make_vectors.documents().items():
        assert (HERE / name).read_text() == make_vectors.render(doc), (
            f"{name} is stale: rerun make_vectors.py"
        )


def test_vectors_cover_the_spec():
    assert {v["type_name"] for v in FRAMES} >= {
        "HELLO",
        "HELLO_ACK",
        "ACK",
        "NACK",
        "UPLINK",
        "DOWNLINK",
        "STATUS",
        "LOG",
    }
    assert {v["error"] for v in BAD} == {"cobs", "short", "overlong", "crc", "version", "type"}
    assert {len(bytes.fromhex(c["raw"])) for c in COBS} >= {253, 254, 255}


# --- edge codec (CPython, C cobs) -----------------------------------------------------------


@by_name(FRAMES)
def test_edge_encodes_and_decodes_good_frame(v):
    wire = bytes.fromhex(v["wire"])
    payload = bytes.fromhex(v["payload"])
    assert encode(v["type"], v["seq"], payload) == wire
    frame = decode(wire[:-1])
    assert (frame.type, frame.seq, frame.payload) == (v["type"], v["seq"], payload)
    deframer = Deframer()
    got = [f for i in range(len(wire)) for f in deframer.feed(wire[i : i + 1])]
    assert [(f.type, f.seq, f.payload) for f in got] == [(v["type"], v["seq"], payload)]
    assert deframer.errors == {}


@by_name(BAD)
def test_edge_rejects_bad_frame_and_carries_on(v):
    rejected: list[FrameError] = []
    deframer = Deframer(on_error=rejected.append)
    good = bytes.fromhex(FRAMES[0]["wire"])
    frames = deframer.feed(bytes.fromhex(v["wire"]) + good)
    assert [err.reason for err in rejected] == [v["error"]]
    assert deframer.errors == {v["error"]: 1}
    assert [(f.type, f.seq) for f in frames] == [(FRAMES[0]["type"], FRAMES[0]["seq"])]


@by_name(COBS)
def test_edge_cobs_cases(v):
    raw, enc = bytes.fromhex(v["raw"]), bytes.fromhex(v["encoded"])
    assert cobs.encode(raw) == enc
    assert cobs.decode(enc) == raw
    assert b"\x00" not in enc


def test_idle_filler_is_ignored_silently():
    deframer = Deframer()
    good = bytes.fromhex(FRAMES[0]["wire"])
    assert len(deframer.feed(b"\x00\x00\x00" + good + b"\x00\x00")) == 1
    assert deframer.errors == {}


# --- firmware codec, on CPython and under micropython ----------------------------------------


def check_report(rep: dict) -> None:
    """What tests/vectors/codec_report.py printed must be exactly the vectors."""
    for v in FRAMES:
        got = rep["frames"][v["name"]]
        want = [[v["type"], v["seq"], v["payload"]]]
        assert got["encoded"] == v["wire"], v["name"]
        assert got["decoded"] == want, v["name"]
        assert got["bytewise"] == want, v["name"]
    first = FRAMES[0]
    for v in BAD:
        got = rep["bad"][v["name"]]
        assert got["errors"] == [v["error"]], v["name"]
        assert got["counters"] == {v["error"]: 1}, v["name"]
        assert got["after"] == [[first["type"], first["seq"], first["payload"]]], v["name"]
    for c in COBS:
        assert rep["cobs"][c["name"]] == {"encoded": c["encoded"], "decoded": c["raw"]}, c["name"]


def test_firmware_codec_on_cpython(monkeypatch):
    monkeypatch.syspath_prepend(str(FIRMWARE_DIR))
    from . import codec_report

    rep = codec_report.report(str(HERE))
    assert rep["implementation"] == "cpython"
    check_report(rep)


@pytest.mark.firmware
def test_firmware_codec_under_micropython():
    proc = subprocess.run(
        [find_micropython(), str(HERE / "codec_report.py"), str(HERE)],
        env={"MICROPYPATH": f"{FIRMWARE_DIR}:.frozen"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    rep = json.loads(proc.stdout)
    assert rep["implementation"] == "micropython"
    check_report(rep)
