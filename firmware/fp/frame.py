# Serial link frame codec, firmware side. Spec: docs/protocol.md.
# Runs on MicroPython (boards and the unix port) and, for the golden-vector
# tests, on CPython too: only binascii and struct from the standard library.
try:
    from binascii import crc32
except ImportError:  # a port built without binascii.crc32: table-driven, same polynomial
    _T = []
    for _i in range(256):
        _c = _i
        for _k in range(8):
            _c = (_c >> 1) ^ 0xEDB88320 if _c & 1 else _c >> 1
        _T.append(_c)

    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF
try:
    from micropython import const
except ImportError:  # CPython, for the golden-vector tests
    def const(x):
        return x

VERSION = const(1)
MAX_PAYLOAD = const(512)
HEADER = const(4)
MAX_RAW = const(520)  # HEADER + MAX_PAYLOAD + 4 (CRC)
MAX_ENCODED = const(523)  # MAX_RAW + ceil(MAX_RAW / 254)

HELLO = const(0x01)
HELLO_ACK = const(0x02)
ACK = const(0x03)
NACK = const(0x04)
UPLINK = const(0x10)
DOWNLINK = const(0x11)
STATUS = const(0x12)
LOG = const(0x13)
UPDATE_OFFER = const(0x14)  # firmware update of the module itself (fp/update_rx.py)
UPDATE_CHUNK = const(0x15)
UPDATE_COMMIT = const(0x16)

NACK_BUSY = const(1)
NACK_GAP = const(2)
NACK_UNSUPPORTED = const(3)
NACK_INVALID = const(4)
NACK_NO_SESSION = const(5)
NACK_VERSION = const(6)

KNOWN_TYPES = (HELLO, HELLO_ACK, ACK, NACK, UPLINK, DOWNLINK, STATUS, LOG, UPDATE_OFFER, UPDATE_CHUNK,
               UPDATE_COMMIT)


class FrameError(ValueError):
    # args[0] is the counter name from docs/protocol.md section 5
    pass


def is_sequenced(ftype):
    return 0x10 <= ftype <= 0x7F


def cobs_encode(data, delimit=False):
    # Same bytes as the edge's `cobs` package: a block of 254 non-zero bytes that ends
    # the data is not followed by an empty block. delimit=True appends the 0x00.
    n = len(data)
    out = bytearray(n + n // 254 + 3)  # zero-filled: the delimiter is already there
    code_at = 0
    o = 1
    code = 1
    ff_end = False
    for b in data:
        if b:
            out[o] = b
            o += 1
            code += 1
            ff_end = False
            if code == 0xFF:
                out[code_at] = 0xFF
                code_at = o
                o += 1
                code = 1
                ff_end = True
        else:
            out[code_at] = code
            code_at = o
            o += 1
            code = 1
            ff_end = False
    if ff_end:
        o -= 1  # drop the empty block opened after the last 0xFF block
    else:
        out[code_at] = code
    if delimit:
        o += 1
    return bytes(memoryview(out)[:o])


def cobs_decode(data):
    # Into one buffer of the encoded length (the decoded bytes are never more), filled in place:
    # a bridge decodes a frame per ACK, and growing a bytearray block by block (a block per zero
    # byte) left ~1.5 KB of garbage per small frame on a 64K heap.
    n = len(data)
    out = bytearray(n)
    o = 0
    i = 0
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("cobs")
        end = i + code
        if end > n:
            raise FrameError("cobs")
        i += 1
        while i < end:
            b = data[i]
            if b == 0:
                raise FrameError("cobs")
            out[o] = b
            o += 1
            i += 1
        if code != 0xFF and i < n:
            out[o] = 0
            o += 1
    return bytes(memoryview(out)[:o])


def encode(ftype, seq, payload=b""):
    if len(payload) > MAX_PAYLOAD:
        raise FrameError("overlong")
    raw = bytearray(HEADER + len(payload) + 4)
    raw[0] = VERSION
    raw[1] = ftype
    raw[2] = (seq >> 8) & 0xFF
    raw[3] = seq & 0xFF
    raw[HEADER:HEADER + len(payload)] = payload
    crc = crc32(memoryview(raw)[:HEADER + len(payload)]) & 0xFFFFFFFF
    raw[-4] = crc >> 24
    raw[-3] = (crc >> 16) & 0xFF
    raw[-2] = (crc >> 8) & 0xFF
    raw[-1] = crc & 0xFF
    return cobs_encode(raw, True)


def decode(body):
    # body: the bytes between two delimiters (delimiter excluded)
    if len(body) > MAX_ENCODED:
        raise FrameError("overlong")
    raw = cobs_decode(body)
    n = len(raw)
    if n < HEADER + 4:
        raise FrameError("short")
    if n > MAX_RAW:
        raise FrameError("overlong")
    crc = (raw[n - 4] << 24) | (raw[n - 3] << 16) | (raw[n - 2] << 8) | raw[n - 1]
    if crc32(raw[:n - 4]) & 0xFFFFFFFF != crc:
        raise FrameError("crc")
    if raw[0] != VERSION:
        raise FrameError("version")
    ftype = raw[1]
    if ftype not in KNOWN_TYPES and not is_sequenced(ftype):
        raise FrameError("type")
    return ftype, (raw[2] << 8) | raw[3], raw[HEADER:n - 4]


class Deframer:
    # Splits a byte stream at 0x00 delimiters. feed() returns a list of
    # (ftype, seq, payload) for good frames; bad ones are counted in
    # self.errors (counter name -> count) and passed to on_error.
    def __init__(self, on_error=None):
        self.buf = bytearray()
        self.skipping = False
        self.errors = {}
        self.on_error = on_error

    def _bad(self, reason):
        self.errors[reason] = self.errors.get(reason, 0) + 1
        if self.on_error:
            self.on_error(reason)

    def _frame(self, frames, body):
        try:
            frames.append(decode(body))
        except FrameError as e:
            self._bad(e.args[0])

    def feed(self, data):
        frames = []
        start = 0
        n = len(data)
        while start < n:
            end = data.find(b"\x00", start)
            if end < 0:
                if not self.skipping:
                    self.buf.extend(data[start:])
                    if len(self.buf) > MAX_ENCODED:
                        self._bad("overlong")
                        self.buf = bytearray()
                        self.skipping = True
                break
            if self.skipping:
                self.skipping = False
            elif self.buf:  # the frame began in an earlier read
                self.buf.extend(memoryview(data)[start:end])
                self._frame(frames, self.buf)
                self.buf = bytearray()
            elif end > start:  # a whole frame in this read: decoded where it lies, not copied first
                self._frame(frames, memoryview(data)[start:end])
            start = end + 1
        return frames
