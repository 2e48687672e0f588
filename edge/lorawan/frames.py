"""LoRaWAN 1.0.4 PHYPayloads and their crypto, edge side (the ``cryptography`` package).

Data frames (MHDR | DevAddr | FCtrl | FCnt | FOpts | FPort | FRMPayload | MIC), join request
and join accept, 1.0 session-key derivation, and the 32-bit counter behind the 16 bits on the
air. Little-endian on the air; EUIs are handled as 8 bytes written big-endian and reversed on
the air. Spec: LoRaWAN L2 1.0.4 sections 4 and 6.2; docs/radio.md.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

JOIN_REQUEST = 0x00
JOIN_ACCEPT = 0x20
UNCONFIRMED_UP = 0x40
UNCONFIRMED_DOWN = 0x60
CONFIRMED_UP = 0x80
CONFIRMED_DOWN = 0xA0
UPLINKS = (UNCONFIRMED_UP, CONFIRMED_UP)
DOWNLINKS = (UNCONFIRMED_DOWN, CONFIRMED_DOWN)
UP = 0
DOWN = 1
FCTRL_ACK = 0x20
OVERHEAD = 13  # MHDR, DevAddr, FCtrl, FCnt, FPort, MIC
MIN_DATA = 12
JOIN_REQUEST_SIZE = 23
MAX_FRAME = 255

_BLOCK = struct.Struct("<BIBIIBB")  # the A_i / B0 blocks of sections 4.3.3 and 4.4
_FHDR = struct.Struct("<BIBH")  # MHDR, DevAddr, FCtrl, FCnt
_JOIN_REQUEST = struct.Struct("<B8s8sH")


class LoRaWANFormatError(ValueError):
    """Bytes that are not a well-formed LoRaWAN frame; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        super().__init__(detail)


def aes_encrypt(key: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def aes_decrypt(key: bytes, data: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def cmac(key: bytes, *parts: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    for p in parts:
        c.update(p)
    return c.finalize()


def data_mic(nwk_key: bytes, direction: int, devaddr: int, fcnt: int, msg: bytes) -> bytes:
    return cmac(nwk_key, _BLOCK.pack(0x49, 0, direction, devaddr, fcnt & 0xFFFFFFFF, 0, len(msg)), msg)[:4]


def crypt(key: bytes, direction: int, devaddr: int, fcnt: int, data: bytes) -> bytes:
    """FRMPayload encryption (its own inverse): XOR with AES(key, A_i), i from 1."""
    if not data:
        return b""
    blocks = b"".join(
        _BLOCK.pack(1, 0, direction, devaddr, fcnt & 0xFFFFFFFF, 0, i + 1)
        for i in range((len(data) + 15) // 16)
    )
    stream = aes_encrypt(key, blocks)
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))


@dataclass(frozen=True, slots=True)
class DataFrame:
    mhdr: int
    devaddr: int
    fctrl: int
    fcnt16: int
    fopts: bytes
    fport: int | None
    encrypted: bytes  # FRMPayload as on the air
    signed: bytes  # every byte before the MIC
    mic: bytes

    @property
    def uplink(self) -> bool:
        return self.mhdr in UPLINKS

    @property
    def confirmed(self) -> bool:
        return self.mhdr in (CONFIRMED_UP, CONFIRMED_DOWN)

    def mic_ok(self, nwk_key: bytes, fcnt: int) -> bool:
        direction = UP if self.uplink else DOWN
        return hmac.compare_digest(data_mic(nwk_key, direction, self.devaddr, fcnt, self.signed), self.mic)

    def decrypt(self, nwk_key: bytes, app_key: bytes, fcnt: int) -> bytes:
        if self.fport is None:
            return b""
        direction = UP if self.uplink else DOWN
        return crypt(app_key if self.fport else nwk_key, direction, self.devaddr, fcnt, self.encrypted)


def parse_data(frame: bytes) -> DataFrame:
    """Structure of a data frame; the MIC is not checked here."""
    frame = bytes(frame)
    n = len(frame)
    if n < MIN_DATA:
        raise LoRaWANFormatError("short", f"data frame of {n} bytes, at least {MIN_DATA}")
    if n > MAX_FRAME:
        raise LoRaWANFormatError("long", f"frame of {n} bytes, at most {MAX_FRAME}")
    mhdr, devaddr, fctrl, fcnt = _FHDR.unpack_from(frame)
    if mhdr & 0x03:
        raise LoRaWANFormatError("major", f"LoRaWAN major version {mhdr & 3}, expected 0 (R1)")
    if mhdr & 0xE0 not in UPLINKS + DOWNLINKS or mhdr & 0x1C:
        raise LoRaWANFormatError("mtype", f"MHDR 0x{mhdr:02x} is not a data frame")
    end = 8 + (fctrl & 0x0F)
    if end > n - 4:
        raise LoRaWANFormatError("fopts", f"FOpts of {fctrl & 0x0F} bytes overrun the frame")
    fopts = frame[8:end]
    fport = None if end == n - 4 else frame[end]
    if fport == 0 and fopts:
        raise LoRaWANFormatError("fopts", "MAC commands in both FOpts and FPort 0")
    encrypted = frame[end + 1 : n - 4] if fport is not None else b""
    return DataFrame(mhdr, devaddr, fctrl, fcnt, fopts, fport, encrypted, frame[:-4], frame[-4:])


def build_data(
    mhdr: int,
    devaddr: int,
    fcnt: int,
    fport: int | None,
    payload: bytes,
    *,
    nwk_key: bytes,
    app_key: bytes,
    fctrl: int = 0,
    fopts: bytes = b"",
) -> bytes:
    if len(fopts) > 15:
        raise ValueError(f"FOpts of {len(fopts)} bytes, at most 15")
    direction = UP if mhdr in UPLINKS else DOWN
    body = _FHDR.pack(mhdr, devaddr, (fctrl & 0xF0) | len(fopts), fcnt & 0xFFFF) + fopts
    if fport is not None:
        key = app_key if fport else nwk_key
        body += bytes((fport,)) + crypt(key, direction, devaddr, fcnt, payload)
    if len(body) + 4 > MAX_FRAME:
        raise ValueError(f"frame of {len(body) + 4} bytes, at most {MAX_FRAME}")
    return body + data_mic(nwk_key, direction, devaddr, fcnt, body)


def full_fcnt(last: int, fcnt16: int) -> int:
    """The 32-bit counter whose low 16 bits are ``fcnt16``, nearest above ``last`` (-1: none yet)."""
    if last < 0:
        return fcnt16
    full = (last & 0xFFFF0000) | fcnt16
    if full <= last and fcnt16 < (last & 0xFFFF):
        full += 0x10000
    return full


# --- join ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinRequest:
    join_eui: bytes  # 8 bytes, written big-endian
    dev_eui: bytes
    dev_nonce: int
    signed: bytes
    mic: bytes

    def mic_ok(self, app_key: bytes) -> bool:
        return hmac.compare_digest(cmac(app_key, self.signed)[:4], self.mic)


def parse_join_request(frame: bytes) -> JoinRequest:
    frame = bytes(frame)
    if len(frame) != JOIN_REQUEST_SIZE:
        raise LoRaWANFormatError("join", f"join request of {len(frame)} bytes, expected {JOIN_REQUEST_SIZE}")
    mhdr, join_eui, dev_eui, dev_nonce = _JOIN_REQUEST.unpack_from(frame)
    if mhdr != JOIN_REQUEST:
        raise LoRaWANFormatError("mtype", f"MHDR 0x{mhdr:02x} is not a join request")
    return JoinRequest(join_eui[::-1], dev_eui[::-1], dev_nonce, frame[:-4], frame[-4:])


def build_join_request(app_key: bytes, join_eui: bytes, dev_eui: bytes, dev_nonce: int) -> bytes:
    body = _JOIN_REQUEST.pack(JOIN_REQUEST, join_eui[::-1], dev_eui[::-1], dev_nonce)
    return body + cmac(app_key, body)[:4]


def build_join_accept(
    app_key: bytes,
    join_nonce: int,
    net_id: int,
    devaddr: int,
    *,
    dl_settings: int = 0,
    rx_delay: int = 1,
    cflist: bytes = b"",
) -> bytes:
    """The join accept, encrypted with AES *decrypt* (section 6.2.6) so the device opens it by encrypting."""
    if len(cflist) not in (0, 16):
        raise ValueError(f"CFList of {len(cflist)} bytes, 0 or 16")
    plain = (
        join_nonce.to_bytes(3, "little")
        + net_id.to_bytes(3, "little")
        + struct.pack("<IBB", devaddr, dl_settings, rx_delay)
        + cflist
    )
    mic = cmac(app_key, bytes((JOIN_ACCEPT,)) + plain)[:4]
    return bytes((JOIN_ACCEPT,)) + aes_decrypt(app_key, plain + mic)


def open_join_accept(app_key: bytes, frame: bytes) -> tuple[int, int, int, int, int, bytes]:
    """(join nonce, net id, devaddr, dl settings, rx delay, cflist) of a join accept; checks its MIC."""
    frame = bytes(frame)
    if len(frame) not in (17, 33) or frame[0] != JOIN_ACCEPT:
        raise LoRaWANFormatError("join", f"not a join accept ({len(frame)} bytes)")
    plain = aes_encrypt(app_key, frame[1:])
    if not hmac.compare_digest(cmac(app_key, frame[:1], plain[:-4])[:4], plain[-4:]):
        raise LoRaWANFormatError("mic", "join accept MIC")
    devaddr, dl, rx_delay = struct.unpack_from("<IBB", plain, 6)
    return (
        int.from_bytes(plain[0:3], "little"),
        int.from_bytes(plain[3:6], "little"),
        devaddr,
        dl,
        rx_delay,
        plain[12:-4],
    )


def session_keys(app_key: bytes, join_nonce: int, net_id: int, dev_nonce: int) -> tuple[bytes, bytes]:
    """LoRaWAN 1.0 (NwkSKey, AppSKey): AES(AppKey, tag | JoinNonce | NetID | DevNonce | pad)."""
    tail = (
        join_nonce.to_bytes(3, "little")
        + net_id.to_bytes(3, "little")
        + struct.pack("<H", dev_nonce)
        + bytes(7)
    )
    keys = aes_encrypt(app_key, b"\x01" + tail + b"\x02" + tail)
    return keys[:16], keys[16:]
