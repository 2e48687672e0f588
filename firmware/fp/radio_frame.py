# Radio frames and the serial payloads that carry them, firmware side.
# Spec: docs/radio.md. The edge twin is edge/radio.py; both pass
# tests/vectors/radio.json. All integers big-endian. Only what a module does with them is here
# (a board never builds a downlink nor reads a serial uplink: tests/firmware/mp/v1build.py does, for
# the scripts that play the edge); the downlink commands are fp/downlink.py's, loaded when one comes;
# the v1 MIC and the checks of a received v1 frame, fp/v1frame.py's.
import struct

from micropython import const

# What makes and checks a v1 frame's MIC (HMAC-SHA256) is fp/v1frame.py's: a LoRaWAN node, whose
# frames carry the AES-CMAC MIC (fp/lorawan/), never loads it; a 64K board needs the RAM.
_MIC_SIZE = const(4)  # fp/mic.py MIC_SIZE

KIND_UPLINK = const(0x40)
KIND_DOWNLINK = const(0x60)
HEADER = const(14)  # kind, device id (8), fcnt (4), port
OVERHEAD = const(18)  # HEADER + MIC
_MAX_FRAME = const(255)  # what a LoRa modem can carry in one packet
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

# downlink ports: 0, an ACK; 3, a command (fp/downlink.py)
DL_PORT_COMMAND = const(3)

# first byte of the serial ACK of an UPLINK
ACK_STORED = const(0)
ACK_DUPLICATE = const(1)
ACK_BAD_MIC = const(2)
ACK_REPLAYED = const(3)
ACK_UNKNOWN_DEVICE = const(4)
# 5: malformed


class RadioError(ValueError):
    # args[0]: a short reason code (short, long, kind, port, device, mic, fcnt,
    # command, range); args[1]: human text for LOG frames and port-2 reasons.
    pass


def unsigned(kind, dev_id, fcnt, port, payload=b""):
    # Everything of a frame but its MIC: what the journal keeps, so that the MIC
    # is computed at transmission with the key the module holds then (sign()).
    n = len(payload)
    if HEADER + n + _MIC_SIZE > _MAX_FRAME:
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


def fcnt_of(frame):
    return struct.unpack_from(">I", frame, 9)[0]
