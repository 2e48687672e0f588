"""edge/lorawan/frames.py against tests/vectors/lorawan.json (the firmware passes the same file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.lorawan import frames as F

VEC = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "lorawan.json").read_text())


def test_cmac_matches_rfc4493():
    for v in VEC["cmac"]:
        assert F.cmac(bytes.fromhex(v["key"]), bytes.fromhex(v["msg"])).hex() == v["cmac"]


@pytest.mark.parametrize("v", VEC["data_frames"], ids=lambda v: v["name"])
def test_data_frames_build_parse_verify_decrypt(v):
    nwk, app = bytes.fromhex(v["nwk_skey"]), bytes.fromhex(v["app_skey"])
    frame = bytes.fromhex(v["hex"])
    built = F.build_data(
        v["mhdr"],
        v["devaddr"],
        v["fcnt"],
        v["fport"],
        bytes.fromhex(v["payload"]),
        nwk_key=nwk,
        app_key=app,
        fctrl=v["fctrl"],
    )
    assert built == frame
    d = F.parse_data(frame)
    assert (d.mhdr, d.devaddr, d.fctrl, d.fcnt16, d.fport) == (
        v["mhdr"],
        v["devaddr"],
        v["fctrl"],
        v["fcnt"] & 0xFFFF,
        v["fport"],
    )
    assert d.mic_ok(nwk, v["fcnt"])
    assert d.decrypt(nwk, app, v["fcnt"]).hex() == v["payload"]
    # the 32-bit counter is in the MIC: the same bytes under another upper half fail
    assert not d.mic_ok(nwk, v["fcnt"] ^ 0x10000)
    flipped = bytearray(frame)
    flipped[-5] ^= 0x01
    assert not F.parse_data(bytes(flipped)).mic_ok(nwk, v["fcnt"])


def test_join_requests_and_accepts():
    for v in VEC["join_requests"]:
        jr = F.parse_join_request(bytes.fromhex(v["hex"]))
        assert (jr.join_eui.hex(), jr.dev_eui.hex(), jr.dev_nonce) == (
            v["join_eui"],
            v["dev_eui"],
            v["dev_nonce"],
        )
        assert jr.mic_ok(bytes.fromhex(v["app_key"]))
        assert not jr.mic_ok(bytes(16))
    for v in VEC["join_accepts"]:
        key = bytes.fromhex(v["app_key"])
        got = F.open_join_accept(key, bytes.fromhex(v["hex"]))
        assert got == (
            v["join_nonce"],
            v["net_id"],
            v["devaddr"],
            v["dl_settings"],
            v["rx_delay"],
            bytes.fromhex(v["cflist"]),
        )
        keys = F.session_keys(key, v["join_nonce"], v["net_id"], v["dev_nonce"])
        assert [k.hex() for k in keys] == [v["nwk_skey"], v["app_skey"]]
        with pytest.raises(F.LoRaWANFormatError, match="MIC"):
            F.open_join_accept(bytes(16), bytes.fromhex(v["hex"]))
    for v in VEC["session_keys"]:
        keys = F.session_keys(bytes.fromhex(v["app_key"]), v["join_nonce"], v["net_id"], v["dev_nonce"])
        assert [k.hex() for k in keys] == [v["nwk_skey"], v["app_skey"]]


def test_fcnt_reconstruction_and_bad_frames():
    for v in VEC["fcnt"]:
        assert F.full_fcnt(v["last"], v["fcnt16"]) == v["full"], v
    for v in VEC["bad_frames"]:
        with pytest.raises(F.LoRaWANFormatError) as err:
            F.parse_data(bytes.fromhex(v["hex"]))
        assert err.value.reason == v["reason"], v["name"]
