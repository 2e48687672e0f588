# LoRaWAN 1.0.4 join, node side: the join request, the join accept (opened
# with AES *encrypt*, see crypto.py) and the 1.0 session keys. EUIs as 8 bytes
# written big-endian, reversed on the air. Spec: LoRaWAN L2 1.0.4 section 6.2.
import struct

from fp import store
from fp.lorawan.crypto import Cmac, equal
from fp.lorawan.frames import JOIN_ACCEPT, JOIN_REQUEST, FrameError, Session
from micropython import const

_NONCE = "lw_nonce"
_NONCE_BLOCK = const(8)  # DevNonce values reserved per flash write


def request(lw):
    # A join request of `lw` (fp/lorawan/otaa.py) with a new DevNonce, reserved on
    # flash before it goes out, so no DevNonce is ever sent twice (1.0.4: a counter).
    if lw.abp:
        raise FrameError("join", "ABP device: no join")
    if lw.dev_nonce is None:
        body = store.read_atomic(_NONCE)
        lw.dev_nonce = lw._nonce_limit = struct.unpack(">I", body)[0] if body and len(body) == 4 else 0
    n = lw.dev_nonce + 1
    if n > 0xFFFF:
        raise FrameError("join", "DevNonce exhausted: provision a new AppKey")
    if n > lw._nonce_limit:
        lw._nonce_limit = n + _NONCE_BLOCK - 1
        store.write_atomic(_NONCE, struct.pack(">I", lw._nonce_limit))
    lw.dev_nonce = n
    if lw._app is None:
        lw._app = Cmac(lw._app_key)
    return join_request(lw._app, lw.join_eui, lw.dev_eui, n)


def accept(lw, frame):
    # The join accept answering `lw`'s last request: new session keys, counters
    # from 0. Raises FrameError (not ours, bad MIC).
    if lw._app is None:
        raise FrameError("join", "no join request sent")
    jn, net_id, devaddr, dl, rx_delay, _ = open_join_accept(lw._app, frame)
    nwk, app = session_keys(lw._app.cipher, jn, net_id, lw.dev_nonce)
    lw.session = Session(devaddr, nwk, app)
    lw.announced = False
    lw.fcnt_down = -1
    lw.rx1_delay = (rx_delay & 0x0F) or 1  # RxDelay: Del in bits 3..0, 0 meaning 1 s
    lw.dl_settings = dl & 0x7F  # RX1DROffset, RX2DataRate (bit 7 is OptNeg, a 1.1 flag)
    lw.joins += 1
    lw._save()


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
