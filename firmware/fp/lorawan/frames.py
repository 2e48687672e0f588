# LoRaWAN 1.0.4 PHYPayloads, node side: data frames (MHDR | DevAddr | FCtrl |
# FCnt | FOpts | FPort | FRMPayload | MIC); the join is in join.py (loaded only
# when a node joins: a 64K board compiles and keeps less). Multi-byte fields are little-endian on the air;
# EUIs are given here as they are written (big-endian hex) and reversed on the
# air. Spec: LoRaWAN L2 1.0.4 sections 4, 6.2.5 and 6.2.6; docs/radio.md.
import struct

from fp.lorawan.crypto import Cmac, aes, equal
from micropython import const

from fp.lorawan.phy import (  # noqa: F401  (re-exported: frames is the node's API)
    JOIN_REQUEST,
    JOIN_ACCEPT,
    UNCONFIRMED_UP,
    CONFIRMED_UP,
    UPLINKS,
    DOWNLINKS,
    FCTRL_ACK,
    OVERHEAD,
    JOIN_REQUEST_SIZE,
    FrameError,
    parse,
)

# private consts are inlined per module: the ones frames.py uses itself
_UP = const(0)
_DOWN = const(1)
_MAX_FRAME = const(255)


def _block(first, direction, devaddr, fcnt, last):
    # The A_i / B0 blocks of sections 4.3.3 and 4.4
    return struct.pack("<BIBIIBB", first, 0, direction, devaddr, fcnt & 0xFFFFFFFF, 0, last)


def mic(nwk, direction, devaddr, fcnt, msg):
    # Data-frame MIC: CMAC(NwkSKey, B0 | msg)[0:4]; `nwk` is a Cmac.
    return nwk.digest(_block(0x49, direction, devaddr, fcnt, len(msg)), msg)[:4]


def crypt(cipher, direction, devaddr, fcnt, data):
    # FRMPayload encryption, its own inverse: XOR with AES(K, A_i), i from 1.
    # `cipher` is an aes() object of AppSKey (FPort > 0) or NwkSKey (FPort 0).
    out = bytearray(data)
    s = bytearray(16)
    for k in range(0, len(out), 16):
        cipher.encrypt(_block(0x01, direction, devaddr, fcnt, k // 16 + 1), s)
        for j in range(min(16, len(out) - k)):
            out[k + j] ^= s[j]
    return bytes(out)


class Session:
    # The keys and address of one activation (OTAA join or ABP), with their
    # ciphers made once.
    def __init__(self, devaddr, nwk_key, app_key):
        self.devaddr = devaddr
        self.nwk_key = bytes(nwk_key)
        self.app_key = bytes(app_key)
        self.nwk = Cmac(nwk_key)
        self.nwk_cipher = self.nwk.cipher
        self.app_cipher = aes(app_key)

    def build(self, mhdr, fcnt, fport, payload, fctrl=0):
        # A data frame at 32-bit counter `fcnt` (16 bits go on the air), no FOpts.
        direction = _UP if mhdr in UPLINKS else _DOWN
        head = struct.pack("<BIBH", mhdr, self.devaddr, fctrl & 0xF0, fcnt & 0xFFFF)
        if fport is None:
            body = head
        else:
            key = self.app_cipher if fport else self.nwk_cipher
            body = head + bytes((fport,)) + crypt(key, direction, self.devaddr, fcnt, payload)
        if len(body) + 4 > _MAX_FRAME:
            raise FrameError("long", "frame of %d bytes, at most %d" % (len(body) + 4, _MAX_FRAME))
        return body + mic(self.nwk, direction, self.devaddr, fcnt, body)

    def open(self, frame, fcnt, parsed=None):
        # A data frame of this session whose 32-bit counter is `fcnt` (see
        # full_fcnt); returns (mhdr, fctrl, fopts, fport, plaintext) or raises
        # FrameError. MIC before anything is decrypted. parsed: parse(frame), if the
        # caller has it already (a downlink per uplink: not parsed twice).
        mhdr, devaddr, fctrl, _, fopts, fport, _ = parsed or parse(frame)
        direction = _UP if mhdr in UPLINKS else _DOWN
        n = len(frame) - 4
        if not equal(mic(self.nwk, direction, devaddr, fcnt, memoryview(frame)[:n]), frame[n:]):
            raise FrameError("mic", "bad MIC")
        start = 8 + len(fopts) + 1
        data = b""
        if fport is not None:
            key = self.app_cipher if fport else self.nwk_cipher
            data = crypt(key, direction, devaddr, fcnt, frame[start:n])
        return mhdr, fctrl, fopts, fport, data


def full_fcnt(last, fcnt16):
    # The 32-bit counter whose low 16 bits are `fcnt16`, nearest above `last`
    # (the highest seen; -1: none yet): a 16-bit wrap carries into the top half.
    if last < 0:
        return fcnt16
    full = (last & 0xFFFF0000) | fcnt16
    if full <= last and fcnt16 < (last & 0xFFFF):
        full += 0x10000
    return full
