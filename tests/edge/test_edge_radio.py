import hashlib
import hmac
import json
from pathlib import Path

import pytest

from edge import radio
from edge.radio import AckResult, RadioFormatError

KEY = bytes(range(16))
DEV = "0123456789abcdef"
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "radio.json"


def test_uplink_round_trip_and_mic():
    frame = radio.build_uplink(KEY, DEV, 42, 1, b"\x01\x67\x00\xd7")
    assert len(frame) == 18 + 4
    parsed = radio.parse_frame(frame)
    assert (parsed.device_id, parsed.fcnt, parsed.port, parsed.payload) == (DEV, 42, 1, b"\x01\x67\x00\xd7")
    assert parsed.mic_ok(KEY)
    assert not parsed.mic_ok(bytes(16))


def test_any_flipped_bit_breaks_the_mic():
    frame = bytearray(radio.build_uplink(KEY, DEV, 7, 1, b"abc"))
    for i in range(len(frame) - 4):
        bad = bytearray(frame)
        bad[i] ^= 0x01
        try:
            parsed = radio.parse_frame(bytes(bad))
        except RadioFormatError:
            continue  # the kind byte
        assert not parsed.mic_ok(KEY), f"bit flip at byte {i} not detected"


@pytest.mark.parametrize("data", [b"", b"\x40" * 17, b"\x60" + bytes(21)])
def test_malformed_frames_are_refused(data):
    with pytest.raises(RadioFormatError):
        radio.parse_frame(data)


def test_serial_uplink_metadata():
    frame = radio.build_uplink(KEY, DEV, 1, 1, b"")
    payload = radio.build_serial_uplink(frame, rssi=-117, snr=-7.5, rx_time=1_700_000_123)
    rx = radio.parse_serial_uplink(payload)
    assert (rx.rssi, rx.snr, rx.rx_time, rx.frame) == (-117, -7.5, 1_700_000_123, frame)
    with pytest.raises(RadioFormatError):
        radio.parse_serial_uplink(payload[:20])


def test_downlink_binds_to_the_uplink_fcnt():
    cmd = radio.encode_command(0x1234, "set_interval", {"seconds": 600})
    assert cmd == bytes.fromhex("123401") + (600).to_bytes(4, "big")
    down = radio.build_downlink(KEY, DEV, 99, cmd)
    parsed = radio.parse_frame(down, kind=radio.KIND_DOWNLINK)
    assert (parsed.fcnt, parsed.port, parsed.payload) == (99, 3, cmd)
    assert parsed.mic_ok(KEY)
    ack_only = radio.parse_frame(radio.build_downlink(KEY, DEV, 99), kind=radio.KIND_DOWNLINK)
    assert (ack_only.port, ack_only.payload) == (0, b"")


def test_ack_carries_a_downlink_only_for_stored_and_duplicate():
    down = radio.build_downlink(KEY, DEV, 1)
    assert radio.build_ack(AckResult.STORED, down) == b"\x00" + down
    assert radio.build_ack(AckResult.DUPLICATE, down) == b"\x01" + down
    assert radio.build_ack(AckResult.BAD_MIC, down) == b"\x02"


def test_downlink_result_parsing():
    res = radio.parse_downlink_result(b"\x00\x05\x02too big")
    assert (res.dl_id, res.result, res.reason, res.ok) == (5, 2, "too big", False)
    assert res.describe() == "value out of range: too big"
    with pytest.raises(RadioFormatError):
        radio.parse_downlink_result(b"\x00")


needs_vectors = pytest.mark.skipif(not VECTORS.exists(), reason="tests/vectors/radio.json not written yet")


def vectors():
    return json.loads(VECTORS.read_text())


@needs_vectors
def test_golden_uplinks_and_downlinks():
    data = vectors()
    for vec in data["uplinks"]:
        key = bytes.fromhex(vec["key"])
        raw = bytes.fromhex(vec["hex"])
        parsed = radio.parse_frame(raw)
        assert (parsed.device_id, parsed.fcnt, parsed.port, parsed.payload.hex(), parsed.mic.hex()) == (
            vec["device"],
            vec["fcnt"],
            vec["port"],
            vec["payload"],
            vec["mic"],
        ), vec["name"]
        assert parsed.mic_ok(key)
        assert (
            radio.build_uplink(key, vec["device"], vec["fcnt"], vec["port"], bytes.fromhex(vec["payload"]))
            == raw
        )
    for vec in data["downlinks"]:
        key = bytes.fromhex(vec["key"])
        command = None
        if vec["port"] == 3:
            name = {v: k for k, v in radio.COMMAND_NAMES.items()}[vec["cmd"]]
            command = radio.encode_command(vec["dl_id"], name, vec["args"])
            assert command.hex() == vec["command"], vec["name"]
        assert radio.build_downlink(key, vec["device"], vec["fcnt"], command).hex() == vec["hex"], vec["name"]


@needs_vectors
def test_golden_serial_uplinks_acks_hmac():
    data = vectors()
    for vec in data["serial_uplinks"]:
        frame = bytes.fromhex(vec["frame"])
        wire = radio.build_serial_uplink(frame, rssi=vec["rssi"], snr=vec["snr"], rx_time=vec["rx_time"])
        assert wire.hex() == vec["hex"]
        rx = radio.parse_serial_uplink(wire)
        assert (rx.rssi, rx.snr, rx.rx_time, rx.frame) == (vec["rssi"], vec["snr"], vec["rx_time"], frame)
    for vec in data["acks"]:
        assert radio.build_ack(AckResult(vec["result"]), bytes.fromhex(vec["downlink"])).hex() == vec["hex"]
    for vec in data["hmac_sha256"]:
        full = hmac.new(bytes.fromhex(vec["key"]), bytes.fromhex(vec["msg"]), hashlib.sha256)
        assert full.hexdigest() == vec["hex"]
        assert radio.mic(bytes.fromhex(vec["key"]), bytes.fromhex(vec["msg"])).hex() == vec["hex"][:8]


@needs_vectors
def test_golden_lpp_values_with_units():
    from edge.codecs import CodecRunner

    runner = CodecRunner()
    for vec in vectors()["lpp"]:
        values, error = runner.decode("lpp", 1, bytes.fromhex(vec["hex"]))
        assert error is None
        assert {v["name"]: v["value"] for v in values} == {
            "temperature": vec["temperature"],
            "humidity": vec["humidity"],
            "battery": vec["battery"],
        }
        assert [v["unit"] for v in values] == ["°C", "%", "V"]


@needs_vectors
def test_golden_aged_readings_split_into_age_and_readings():
    # docs/radio.md 0.9: the firmware builds these payloads (tests/firmware checks it against the
    # same file); the edge reads back the age it was sent (capped) and the port-1 readings.
    data = vectors()
    assert data["aged"], "no aged vectors"
    for vec in data["aged"]:
        age, readings = radio.split_aged(bytes.fromhex(vec["payload"]))
        assert (age, readings.hex()) == (vec["sent_age_s"], vec["readings"]), vec["name"]
        assert age <= radio.AGE_MAX_S
        frame = bytes.fromhex(vec["unsigned_out"])
        assert frame[13] == radio.PORT_AGED and frame[14:] == bytes.fromhex(vec["payload"]), vec["name"]
    for vec in data["bad_aged"]:
        with pytest.raises(radio.RadioFormatError, match=vec["reason"]):
            radio.split_aged(bytes.fromhex(vec["payload"]))
