# Radio frames and the serial payloads that carry them, firmware side.
# Spec: docs/radio.md. The edge twin is edge/radio.py; both pass
# tests/vectors/radio.json. All integers big-endian.
import struct

from micropython import const

# fp/mic.py (HMAC-SHA256) is imported where a MIC is made or checked: a LoRaWAN node, whose
# frames carry the AES-CMAC MIC (fp/lorawan/), never loads it; a 64K board needs the RAM.
MIC_SIZE = const(4)  # fp/mic.py MIC_SIZE

KIND_UPLINK = const(0x40)
KIND_DOWNLINK = const(0x60)
HEADER = const(14)  # kind, device id (8), fcnt (4), port
OVERHEAD = const(18)  # HEADER + MIC
MAX_FRAME = const(255)  # what a LoRa modem can carry in one packet
# uplink ports
PORT_READINGS = const(1)
PORT_RESULT = const(2)
PORT_STATUS = const(3)
# A reading that waited (docs/radio.md 0.9): its age at transmission, then the port-1 payload.
_PORT_AGED = const(8)
_AGE_MAX = const(0x1FFFFF)  # s (24.3 days): three bytes of age; an older reading says this
# Port 255 (fp/device.py _SAMPLED), journal only, never on the air: a reading with its sample time (u32, tenths of a second on
# the node's clock) before its payload. FPort 255 is reserved in LoRaWAN: were it ever sent
# (a downgraded firmware), no server would take it for readings.
UPLINK_PORTS = (PORT_READINGS, PORT_RESULT, PORT_STATUS, _PORT_AGED)
# downlink ports
DL_PORT_ACK = const(0)
DL_PORT_COMMAND = const(3)
DOWNLINK_PORTS = (DL_PORT_ACK, DL_PORT_COMMAND)

# downlink commands (port 3)
CMD_SET_INTERVAL = const(1)
CMD_SET_OUTPUT = const(2)
CMD_REQUEST_STATUS = const(3)
CMD_REBOOT = const(4)
CMD_CONFIG = const(5)

# downlink results (uplink port 2)
RESULT_OK = const(0)
RESULT_UNKNOWN_COMMAND = const(1)
RESULT_OUT_OF_RANGE = const(2)
RESULT_FAILED = const(3)

# first byte of the serial ACK of an UPLINK
ACK_STORED = const(0)
ACK_DUPLICATE = const(1)
ACK_BAD_MIC = const(2)
ACK_REPLAYED = const(3)
ACK_UNKNOWN_DEVICE = const(4)
ACK_MALFORMED = const(5)

RX_META = const(7)  # rssi i16, snr i8 (quarter dB), rx time u32


class RadioError(ValueError):
    # args[0]: a short reason code (short, long, kind, port, device, mic, fcnt,
    # command, range); args[1]: human text for LOG frames and port-2 reasons.
    pass


def unsigned(kind, dev_id, fcnt, port, payload=b""):
    # Everything of a frame but its MIC: what the journal keeps, so that the MIC
    # is computed at transmission with the key the module holds then (sign()).
    n = len(payload)
    if HEADER + n + MIC_SIZE > MAX_FRAME:
        raise RadioError("long", "payload of %d bytes does not fit a radio frame" % n)
    buf = bytearray(HEADER + n)
    buf[0] = kind
    buf[1:9] = dev_id
    struct.pack_into(">IB", buf, 9, fcnt & 0xFFFFFFFF, port)
    buf[HEADER:] = payload
    return bytes(buf)


def aged(body, age_s):
    # A journaled port-255 frame as it goes out age_s seconds after it was sampled: 0 or less,
    # plain port 1; else port 8, the age as an unsigned LEB128 (7 bits a byte, low first, high
    # bit = more: 1 byte below 128 s, 2 below 4.5 h, 3 up to _AGE_MAX, which caps it), then the
    # readings unchanged. One buffer, filled in place: it is made at every transmission.
    age_s = min(age_s, _AGE_MAX)
    n = 0 if age_s <= 0 else (1 if age_s < 0x80 else (2 if age_s < 0x4000 else 3))
    buf = bytearray(len(body) - 4 + n)
    mv = memoryview(body)
    buf[:HEADER] = mv[:HEADER]
    buf[13] = _PORT_AGED if n else PORT_READINGS
    for i in range(n):
        buf[HEADER + i] = (age_s & 0x7F) | (0x80 if i < n - 1 else 0)
        age_s >>= 7
    buf[HEADER + n :] = mv[HEADER + 4 :]
    return buf


def sign(body, key):
    # The frame on the air: an unsigned frame followed by its MIC with `key`.
    from fp.mic import mic
    return bytes(body) + mic(key, body)


def build(kind, dev_id, key, fcnt, port, payload=b""):
    return sign(unsigned(kind, dev_id, fcnt, port, payload), key)


def build_uplink(dev_id, key, fcnt, port, payload):
    return build(KIND_UPLINK, dev_id, key, fcnt, port, payload)


def build_downlink(dev_id, key, fcnt, command=None):
    if command is None:
        return build(KIND_DOWNLINK, dev_id, key, fcnt, DL_PORT_ACK)
    return build(KIND_DOWNLINK, dev_id, key, fcnt, DL_PORT_COMMAND, command)


def fcnt_of(frame):
    return struct.unpack_from(">I", frame, 9)[0]


def check(frame, kind):
    # Structure only (the bridge has no node keys): size, kind, port.
    # Returns (device id bytes, fcnt, port).
    n = len(frame)
    if n < OVERHEAD:
        raise RadioError("short", "radio frame of %d bytes, at least %d" % (n, OVERHEAD))
    if n > MAX_FRAME:
        raise RadioError("long", "radio frame of %d bytes, at most %d" % (n, MAX_FRAME))
    if frame[0] != kind:
        raise RadioError("kind", "kind 0x%02x, expected 0x%02x" % (frame[0], kind))
    port = frame[13]
    if port not in (UPLINK_PORTS if kind == KIND_UPLINK else DOWNLINK_PORTS):
        raise RadioError("port", "unknown port %d" % port)
    return bytes(frame[1:9]), fcnt_of(frame), port


def mic_ok(frame, key):
    from fp.mic import mic, mic_equal
    n = len(frame) - MIC_SIZE
    return mic_equal(mic(key, memoryview(frame)[:n]), frame[n:])


def open_downlink(frame, dev_id, key, fcnt):
    # A downlink for this device answering uplink `fcnt` (None: any). Returns
    # (port, command bytes). Checks in the order that leaks least: structure,
    # addressee, MIC, then the binding to our uplink.
    did, dfcnt, port = check(frame, KIND_DOWNLINK)
    if did != dev_id:
        raise RadioError("device", "downlink for another device")
    if not mic_ok(frame, key):
        raise RadioError("mic", "bad MIC")
    if fcnt is not None and dfcnt != fcnt:
        raise RadioError("fcnt", "downlink answers fcnt %d, not %d" % (dfcnt, fcnt))
    return port, bytes(frame[HEADER:len(frame) - MIC_SIZE])


def parse_command(payload):
    # Port-3 command: dl_id u16, cmd u8, arguments.
    if len(payload) < 3:
        raise RadioError("short", "command of %d bytes, at least 3" % len(payload))
    dl_id, cmd = struct.unpack_from(">HB", payload)
    return dl_id, cmd, payload[3:]


def encode_command(dl_id, cmd, args=b""):
    return struct.pack(">HB", dl_id & 0xFFFF, cmd) + args


def result_payload(dl_id, result, reason=""):
    # Uplink port 2. The reason is cut so the frame fits the smallest budget (51 bytes).
    reason = reason.encode() if isinstance(reason, str) else reason
    return struct.pack(">HB", dl_id & 0xFFFF, result) + reason[:30]


def serial_uplink(rssi, snr_db, rx_time, frame):
    snr_q = int(round(snr_db * 4))
    snr_q = -128 if snr_q < -128 else (min(snr_q, 127))
    rssi = -32768 if rssi < -32768 else (32767 if rssi > 32767 else int(rssi))
    return struct.pack(">hbI", rssi, snr_q, int(rx_time) & 0xFFFFFFFF) + frame


def parse_serial_uplink(payload):
    if len(payload) < RX_META + OVERHEAD:
        raise RadioError("short", "UPLINK payload of %d bytes" % len(payload))
    rssi, snr_q, rx_time = struct.unpack_from(">hbI", payload)
    return rssi, snr_q / 4, rx_time, bytes(payload[RX_META:])


def parse_ack(result_bytes):
    # The edge's ACK of an UPLINK: result, then the downlink frame for results 0/1.
    if not result_bytes:
        raise RadioError("short", "empty ACK result")
    return result_bytes[0], bytes(result_bytes[1:])
