"""Builds tests/vectors/lorawan.json: LoRaWAN 1.0.x vectors for edge/lorawan and firmware/fp/lorawan.

The published vectors are copied here by hand from their sources (each entry names it): they
were computed by implementations independent of ours, so both runtimes are checked against a
third party. The "fieldpost" entries exercise what the published ones do not (a confirmed uplink
of a standard reading with a 32-bit counter, an ACK downlink carrying a command, a join accept
without CFList); they are computed with the edge code at generation time and are trusted because
the same code passes the published vectors and the firmware, written separately, agrees byte for byte.
Regenerate with: python -m tests.firmware.lorawan_vectors > tests/vectors/lorawan.json
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

from edge.lorawan import frames as F

RFC4493 = "RFC 4493 section 4 (AES-CMAC test vectors), https://www.rfc-editor.org/rfc/rfc4493#section-4"
LP_MIC = "anthonykirby/lora-packet test/test_mic.js, https://github.com/anthonykirby/lora-packet"
LP_DECRYPT = "anthonykirby/lora-packet test/test_decrypt.js, https://github.com/anthonykirby/lora-packet"
LP_KEYGEN = "anthonykirby/lora-packet test/test_keygen.js, https://github.com/anthonykirby/lora-packet"
TTN_JOIN = (
    "a TTN join captured and decoded by Arjan van Bentem, https://runkit.com/avbentem/deciphering-a-lorawan-"
    "otaa-join-accept, with its session keys in https://github.com/anthonykirby/lora-packet/issues/10"
)
SPEC_FCNT = "LoRaWAN L2 1.0.4 section 4.3.1.5: 16 FCnt bits on the air, 32 tracked; a wrap carries"
FIELDPOST = "fieldpost: computed by edge/lorawan/frames.py, which passes the published vectors above"

RFC_KEY = "2b7e151628aed2a6abf7158809cf4f3c"
RFC_MSG = (
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)
LP_NWK = "44024241ed4ce9a68c6a8bc055233fd3"
LP_APP = "ec925802ae430ca77fd3dd73cb2cc588"

FP_NWK = bytes(range(1, 17))
FP_APP = bytes(range(17, 33))
FP_APPKEY = bytes(range(33, 49))
FP_DEVADDR = 0x260B1234
FP_DEV_EUI = bytes.fromhex("0123456789abcdef")
FP_JOIN_EUI = bytes.fromhex("fedcba9876543210")


def lpp_standard(temp: float, rh: float, batt: float) -> bytes:
    return (
        struct.pack(">BBh", 1, 0x67, round(temp * 10))
        + struct.pack(">BBB", 2, 0x68, round(rh * 2))
        + struct.pack(">BBh", 3, 0x02, round(batt * 100))
    )


def _data(name, source, nwk, app, mhdr, devaddr, fcnt, fport, payload, hexframe=None, fctrl=0):
    built = F.build_data(
        mhdr,
        devaddr,
        fcnt,
        fport,
        payload,
        nwk_key=bytes.fromhex(nwk),
        app_key=bytes.fromhex(app),
        fctrl=fctrl,
    ).hex()
    if hexframe is not None and built != hexframe.lower():
        raise SystemExit(f"{name}: the edge builds {built}, the source says {hexframe}")
    return {
        "name": name,
        "source": source,
        "nwk_skey": nwk,
        "app_skey": app,
        "mhdr": mhdr,
        "devaddr": devaddr,
        "fctrl": fctrl,
        "fcnt": fcnt,
        "fport": fport,
        "payload": payload.hex(),
        "hex": built,
    }


def build() -> dict[str, Any]:
    cmacs = [
        {"source": RFC4493, "key": RFC_KEY, "msg": RFC_MSG[: 2 * n], "cmac": mac}
        for n, mac in (
            (0, "bb1d6929e95937287fa37d129b756746"),
            (16, "070a16b46b4d4144f79bdd9dd04a287c"),
            (40, "dfa66747de9ae63030ca32611497c827"),
            (64, "51f0bebf7e3b9d92fc49741779363cfe"),
        )
    ]
    fp_nwk, fp_app = FP_NWK.hex(), FP_APP.hex()
    reading = lpp_standard(21.5, 48.5, 3.71)
    data = [
        _data(
            "test",
            LP_MIC,
            LP_NWK,
            LP_APP,
            0x40,
            0x49BE7DF1,
            2,
            1,
            b"test",
            "40F17DBE4900020001954378762B11FF0D",
        ),
        _data(
            "quick brown fox",
            LP_DECRYPT,
            LP_NWK,
            LP_APP,
            0x40,
            0x49BE7DF1,
            4,
            1,
            b"The quick brown fox jumps over the lazy dog.",
            "40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8aa17ad30075293f28dea8a20af3c5e7",
        ),
        _data(
            "empty payload", LP_MIC, LP_NWK, LP_APP, 0x40, 0x49BE7DF1, 3, 1, b"", "40F17DBE49000300012A3518AF"
        ),
        _data(
            "downlink ACK",
            LP_MIC,
            LP_NWK,
            LP_APP,
            0x60,
            0x49BE7DF1,
            2,
            1,
            b"",
            "60f17dbe4920020001f9d65d27",
            0x20,
        ),
        _data("confirmed reading", FIELDPOST, fp_nwk, fp_app, 0x80, FP_DEVADDR, 7, 1, reading),
        _data("reading past a 16-bit wrap", FIELDPOST, fp_nwk, fp_app, 0x80, FP_DEVADDR, 0x10005, 1, reading),
        _data("ack only", FIELDPOST, fp_nwk, fp_app, 0x60, FP_DEVADDR, 7, None, b"", fctrl=0x20),
        _data(
            "ack with set interval 600",
            FIELDPOST,
            fp_nwk,
            fp_app,
            0x60,
            FP_DEVADDR,
            8,
            3,
            struct.pack(">HBI", 513, 1, 600),
            fctrl=0x20,
        ),
        _data(
            "downlink result", FIELDPOST, fp_nwk, fp_app, 0x80, FP_DEVADDR, 9, 2, struct.pack(">HB", 513, 0)
        ),
    ]
    join_requests = [
        {
            "source": TTN_JOIN,
            "app_key": "b6b53f4a168a7a88bdf7ea135ce9cfca",
            "join_eui": "70b3d57ed00000dc",
            "dev_eui": "00afee7cf5ed6f1e",
            "dev_nonce": 0xCC85,
            "hex": "00dc0000d07ed5b3701e6fedf57ceeaf0085cc587fe913",
        },
        {
            "source": LP_MIC,
            "app_key": "98929b92c49edba9676d646d3b612456",
            "join_eui": "aa13693363343639",
            "dev_eui": "3331383274356905",
            "dev_nonce": 0x8904,
            "hex": "0039363463336913aa05693574323831330489c65b1304",
        },
        {
            "source": FIELDPOST,
            "app_key": FP_APPKEY.hex(),
            "join_eui": FP_JOIN_EUI.hex(),
            "dev_eui": FP_DEV_EUI.hex(),
            "dev_nonce": 1,
            "hex": F.build_join_request(FP_APPKEY, FP_JOIN_EUI, FP_DEV_EUI, 1).hex(),
        },
    ]
    for v in join_requests:
        built = F.build_join_request(
            bytes.fromhex(v["app_key"]),
            bytes.fromhex(v["join_eui"]),
            bytes.fromhex(v["dev_eui"]),
            v["dev_nonce"],
        ).hex()
        if built != v["hex"]:
            raise SystemExit(f"join request: the edge builds {built}, the source says {v['hex']}")
    nwk, app = F.session_keys(FP_APPKEY, 0x000001, 0x000013, 1)
    join_accepts = [
        {
            "source": TTN_JOIN,
            "app_key": "b6b53f4a168a7a88bdf7ea135ce9cfca",
            "dev_nonce": 0xCC85,
            "join_nonce": 0xE5063A,
            "net_id": 0x000013,
            "devaddr": 0x26012E43,
            "dl_settings": 3,
            "rx_delay": 1,
            "cflist": "184f84e85684b85e84886684586e8400",
            "hex": "204dd85ae608b87fc4889970b7d2042c9e72959b0057aed6094b16003df12de145",
            "nwk_skey": "2c96f7028184bb0be8aa49275290d4fc",
            "app_skey": "f3a5c8f0232a38c144029c165865802c",
        },
        {
            "source": FIELDPOST,
            "app_key": FP_APPKEY.hex(),
            "dev_nonce": 1,
            "join_nonce": 1,
            "net_id": 0x000013,
            "devaddr": FP_DEVADDR,
            "dl_settings": 0,
            "rx_delay": 1,
            "cflist": "",
            "hex": F.build_join_accept(FP_APPKEY, 1, 0x13, FP_DEVADDR).hex(),
            "nwk_skey": nwk.hex(),
            "app_skey": app.hex(),
        },
    ]
    for v in join_accepts:
        key = bytes.fromhex(v["app_key"])
        built = F.build_join_accept(
            key,
            v["join_nonce"],
            v["net_id"],
            v["devaddr"],
            dl_settings=v["dl_settings"],
            rx_delay=v["rx_delay"],
            cflist=bytes.fromhex(v["cflist"]),
        ).hex()
        keys = [k.hex() for k in F.session_keys(key, v["join_nonce"], v["net_id"], v["dev_nonce"])]
        if built != v["hex"] or keys != [v["nwk_skey"], v["app_skey"]]:
            raise SystemExit(f"join accept: the edge builds {built} {keys}")
    session_keys = [
        {
            "source": LP_KEYGEN,
            "app_key": "98929b92c49edba9676d646d3b612456",
            "join_nonce": 0x376338,
            "net_id": 0xAABBCC,
            "dev_nonce": 0xF18E,
            "nwk_skey": "4e3d6e6afbcc67af2ba3c8e8ec4acf4b",
            "app_skey": "610897aa6f1460623443b527d3ac6a9d",
        }
    ]
    fcnts = [
        {"source": SPEC_FCNT, "last": last, "fcnt16": f16, "full": full}
        for last, f16, full in [
            (-1, 0, 0),
            (-1, 5, 5),
            (4, 5, 5),
            (0xFFFE, 0xFFFF, 0xFFFF),
            (0xFFFF, 0x0000, 0x10000),
            (0xFFFF, 0x0003, 0x10003),
            (0x1FFFF, 0x0001, 0x20001),
            (0x10005, 0x0005, 0x10005),  # the same frame again: same counter, not a wrap
            (0x10005, 0x0004, 0x20004),  # below the last: a wrap (an old frame then fails the MIC)
        ]
    ]
    for v in fcnts:
        if F.full_fcnt(v["last"], v["fcnt16"]) != v["full"]:
            raise SystemExit(f"fcnt: the edge reconstructs {v}")
    bad = [
        {"name": "too short", "hex": "80341210", "reason": "short"},
        {"name": "major version 1", "hex": "81341228260000000116b1d3f0", "reason": "major"},
        {
            "name": "join request as data",
            "hex": "00dc0000d07ed5b3701e6fedf57ceeaf0085cc587fe913",
            "reason": "mtype",
        },
        {"name": "FOpts longer than the frame", "hex": "80341228260f000001123456", "reason": "fopts"},
        {"name": "RFU bits in MHDR", "hex": "84341228260000000116b1d3f0", "reason": "mtype"},
    ]
    return {
        "doc": "LoRaWAN 1.0.x vectors for docs/radio.md; each entry names its source. "
        "Generated by tests/firmware/lorawan_vectors.py.",
        "cmac": cmacs,
        "data_frames": data,
        "join_requests": join_requests,
        "join_accepts": join_accepts,
        "session_keys": session_keys,
        "fcnt": fcnts,
        "bad_frames": bad,
    }


def render() -> str:
    return json.dumps(build(), indent=1) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
