# Fieldpost v1 radio frames (docs/radio.md), what only a v1 node and a bridge do with them: the
# MIC (HMAC-SHA256, fp/mic.py) made and checked, a received frame checked; and a bridge's serial
# UPLINK payload and ACK. A LoRaWAN node never loads it (its frames carry the AES-CMAC MIC,
# fp/lorawan/). The frame layout is fp/radio_frame.py's.
import struct

from fp import radio_frame as rf
from micropython import const

_MIC_SIZE = const(4)  # fp/mic.py MIC_SIZE
_MAX_FRAME = const(255)  # what a LoRa modem can carry in one packet
_PORT_AGED = const(8)  # fp/radio_frame.py: a reading that waited


def sign(body, key):
    # The frame on the air: an unsigned frame followed by its MIC with `key`.
    from fp.mic import mic
    return bytes(body) + mic(key, body)


def check(frame, kind):
    # Structure only (the bridge has no node keys): size, kind, port.
    # Returns (device id bytes, fcnt, port).
    n = len(frame)
    if n < rf.OVERHEAD:
        raise rf.RadioError("short", "radio frame of %d bytes, at least %d" % (n, rf.OVERHEAD))
    if n > _MAX_FRAME:
        raise rf.RadioError("long", "radio frame of %d bytes, at most %d" % (n, _MAX_FRAME))
    if frame[0] != kind:
        raise rf.RadioError("kind", "kind 0x%02x, expected 0x%02x" % (frame[0], kind))
    port = frame[13]
    ports = (rf.PORT_READINGS, rf.PORT_RESULT, rf.PORT_STATUS, _PORT_AGED) if kind == rf.KIND_UPLINK else (0, rf.DL_PORT_COMMAND)
    if port not in ports:
        raise rf.RadioError("port", "unknown port %d" % port)
    return bytes(frame[1:9]), rf.fcnt_of(frame), port


def mic_ok(frame, key):
    from fp.mic import mic, mic_equal
    n = len(frame) - _MIC_SIZE
    return mic_equal(mic(key, memoryview(frame)[:n]), frame[n:])


def open_downlink(frame, dev_id, key, fcnt):
    # A downlink for this device answering uplink `fcnt` (None: any). Returns
    # (port, command bytes). Checks in the order that leaks least: structure,
    # addressee, MIC, then the binding to our uplink.
    did, dfcnt, port = check(frame, rf.KIND_DOWNLINK)
    if did != dev_id:
        raise rf.RadioError("device", "downlink for another device")
    if not mic_ok(frame, key):
        raise rf.RadioError("mic", "bad MIC")
    if fcnt is not None and dfcnt != fcnt:
        raise rf.RadioError("fcnt", "downlink answers fcnt %d, not %d" % (dfcnt, fcnt))
    return port, bytes(frame[rf.HEADER:len(frame) - _MIC_SIZE])


def serial_uplink(rssi, snr_db, rx_time, frame):
    snr_q = int(round(snr_db * 4))
    snr_q = -128 if snr_q < -128 else (min(snr_q, 127))
    rssi = -32768 if rssi < -32768 else (32767 if rssi > 32767 else int(rssi))
    return struct.pack(">hbI", rssi, snr_q, int(rx_time) & 0xFFFFFFFF) + frame


def parse_ack(result_bytes):
    # The edge's ACK of an UPLINK: result, then the downlink frame for results 0/1.
    if not result_bytes:
        raise rf.RadioError("short", "empty ACK result")
    return result_bytes[0], bytes(result_bytes[1:])
