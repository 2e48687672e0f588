# LoRaWAN 1.0.4 PHYPayloads, node side: data frames (MHDR | DevAddr | FCtrl |
# FCnt | FOpts | FPort | FRMPayload | MIC), join request and join accept, and
# the session keys of a join. Multi-byte fields are little-endian on the air;
# EUIs are given here as they are written (big-endian hex) and reversed on the
# air. Spec: LoRaWAN L2 1.0.4 sections 4, 6.2.5 and 6.2.6; docs/radio.md.
import struct

from fp.lorawan.crypto import Cmac, aes, equal
from micropython import const

# MHDR: MType in the top three bits, Major 0 (LoRaWAN R1)
JOIN_REQUEST = const(0x00)
JOIN_ACCEPT = const(0x20)
UNCONFIRMED_UP = const(0x40)
UNCONFIRMED_DOWN = const(0x60)
CONFIRMED_UP = const(0x80)
CONFIRMED_DOWN = const(0xA0)
UPLINKS = (UNCONFIRMED_UP, CONFIRMED_UP)
DOWNLINKS = (UNCONFIRMED_DOWN, CONFIRMED_DOWN)

UP = const(0)
DOWN = const(1)
FCTRL_ACK = const(0x20)
FCTRL_ADR = const(0x80)
OVERHEAD = const(13)  # MHDR 1, DevAddr 4, FCtrl 1, FCnt 2, FPort 1, MIC 4 (no FOpts)
MIN_DATA = const(12)  # a frame without FPort
JOIN_REQUEST_SIZE = const(23)
MAX_FRAME = const(255)


class FrameError(ValueError):
    # args[0]: a short reason code (short, long, mtype, major, fopts, mic,
    # join); args[1]: human text for LOG frames and the port-3 status.
    pass


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

    def build(self, mhdr, fcnt, fport, payload, fctrl=0, fopts=b""):
        # A data frame at 32-bit counter `fcnt` (16 bits go on the air).
        if len(fopts) > 15:
            raise FrameError("fopts", "FOpts of %d bytes, at most 15" % len(fopts))
        direction = UP if mhdr in UPLINKS else DOWN
        head = struct.pack("<BIBH", mhdr, self.devaddr, (fctrl & 0xF0) | len(fopts), fcnt & 0xFFFF) + fopts
        if fport is None:
            body = head
        else:
            key = self.app_cipher if fport else self.nwk_cipher
            body = head + bytes((fport,)) + crypt(key, direction, self.devaddr, fcnt, payload)
        if len(body) + 4 > MAX_FRAME:
            raise FrameError("long", "frame of %d bytes, at most %d" % (len(body) + 4, MAX_FRAME))
        return body + mic(self.nwk, direction, self.devaddr, fcnt, body)

    def open(self, frame, fcnt):
        # A data frame of this session whose 32-bit counter is `fcnt` (see
        # full_fcnt); returns (mhdr, fctrl, fopts, fport, plaintext) or raises
        # FrameError. MIC before anything is decrypted.
        mhdr, devaddr, fctrl, _, fopts, fport, _ = parse(frame)
        direction = UP if mhdr in UPLINKS else DOWN
        n = len(frame) - 4
        if not equal(mic(self.nwk, direction, devaddr, fcnt, memoryview(frame)[:n]), frame[n:]):
            raise FrameError("mic", "bad MIC")
        start = 8 + len(fopts) + 1
        data = b""
        if fport is not None:
            key = self.app_cipher if fport else self.nwk_cipher
            data = crypt(key, direction, devaddr, fcnt, frame[start:n])
        return mhdr, fctrl, fopts, fport, data


def parse(frame):
    # Structure only (a bridge has no keys): returns (mhdr, devaddr, fctrl,
    # fcnt16, fopts, fport or None, encrypted FRMPayload). Raises FrameError.
    n = len(frame)
    if n < MIN_DATA:
        raise FrameError("short", "data frame of %d bytes, at least %d" % (n, MIN_DATA))
    if n > MAX_FRAME:
        raise FrameError("long", "frame of %d bytes, at most %d" % (n, MAX_FRAME))
    mhdr = frame[0]
    if mhdr & 0x03:
        raise FrameError("major", "LoRaWAN major version %d" % (mhdr & 3))
    if mhdr & 0xE0 not in UPLINKS + DOWNLINKS or mhdr & 0x1C:
        raise FrameError("mtype", "MHDR 0x%02x is not a data frame" % mhdr)
    devaddr, fctrl, fcnt = struct.unpack_from("<IBH", frame, 1)
    nopts = fctrl & 0x0F
    end = 8 + nopts
    if end > n - 4:
        raise FrameError("fopts", "FOpts of %d bytes overrun the frame" % nopts)
    fopts = bytes(frame[8:end])
    if end == n - 4:
        return mhdr, devaddr, fctrl, fcnt, fopts, None, b""
    fport = frame[end]
    if fport == 0 and nopts:
        raise FrameError("fopts", "MAC commands in both FOpts and FPort 0")
    return mhdr, devaddr, fctrl, fcnt, fopts, fport, bytes(frame[end + 1:n - 4])


def full_fcnt(last, fcnt16):
    # The 32-bit counter whose low 16 bits are `fcnt16`, nearest above `last`
    # (the highest seen; -1: none yet): a 16-bit wrap carries into the top half.
    if last < 0:
        return fcnt16
    full = (last & 0xFFFF0000) | fcnt16
    if full <= last and fcnt16 < (last & 0xFFFF):
        full += 0x10000
    return full


def _rev(b):
    return bytes(reversed(bytes(b)))


def join_request(app, join_eui, dev_eui, dev_nonce):
    # `app`: Cmac of the AppKey. EUIs as 8 bytes written big-endian.
    body = struct.pack("<B8s8sH", JOIN_REQUEST, _rev(join_eui), _rev(dev_eui), dev_nonce)
    return body + app.digest(body)[:4]


def open_join_accept(app, frame):
    # Decrypt (AES *encrypt*, see crypto.py) and verify a join accept with the
    # AppKey's Cmac `app`. Returns (join_nonce 3 bytes, net_id 3 bytes, devaddr,
    # dl_settings, rx_delay, cflist) as on the air.
    n = len(frame)
    if n not in (17, 33):
        raise FrameError("join", "join accept of %d bytes, 17 or 33" % n)
    if frame[0] != JOIN_ACCEPT:
        raise FrameError("mtype", "MHDR 0x%02x is not a join accept" % frame[0])
    plain = bytearray(n - 1)
    for k in range(0, n - 1, 16):
        app.cipher.encrypt(frame[1 + k:17 + k], memoryview(plain)[k:k + 16])
    if not equal(app.digest(frame[:1], memoryview(plain)[:n - 5])[:4], plain[n - 5:]):
        raise FrameError("mic", "join accept MIC")
    devaddr, dl, rx_delay = struct.unpack_from("<IBB", plain, 6)
    return bytes(plain[0:3]), bytes(plain[3:6]), devaddr, dl, rx_delay, bytes(plain[12:n - 5])


def session_keys(app_cipher, join_nonce, net_id, dev_nonce):
    # LoRaWAN 1.0: NwkSKey = AES(AppKey, 0x01 | JoinNonce | NetID | DevNonce | pad),
    # AppSKey the same with 0x02. Nonce and NetID as on the air.
    keys = []
    for tag in (1, 2):
        block = bytes((tag,)) + join_nonce + net_id + struct.pack("<H", dev_nonce) + bytes(7)
        out = bytearray(16)
        app_cipher.encrypt(block, out)
        keys.append(bytes(out))
    return keys[0], keys[1]
