# Fieldpost v1 frames as the edge makes and reads them (edge/radio.py), from the firmware's own
# pieces (fp/radio_frame.py unsigned, sign): for the scripts that play the edge or check the golden
# vectors. No board builds a downlink or reads a serial uplink, so the firmware does not carry these.
import struct

from fp import radio_frame as rf
from fp import v1frame as v1


def build_uplink(dev_id, key, fcnt, port, payload):
    return v1.sign(rf.unsigned(rf.KIND_UPLINK, dev_id, fcnt, port, payload), key)


def build_downlink(dev_id, key, fcnt, command=None):
    # port 0: an ACK; port 3: a command
    if command is None:
        return v1.sign(rf.unsigned(rf.KIND_DOWNLINK, dev_id, fcnt, 0), key)
    return v1.sign(rf.unsigned(rf.KIND_DOWNLINK, dev_id, fcnt, rf.DL_PORT_COMMAND, command), key)


def parse_serial_uplink(payload):
    # (rssi, snr dB, rx time, radio frame) of a serial UPLINK: rssi i16, snr i8 (quarter dB), time u32
    if len(payload) < 7 + rf.OVERHEAD:
        raise rf.RadioError("short", "UPLINK payload of %d bytes" % len(payload))
    rssi, snr_q, rx_time = struct.unpack_from(">hbI", payload)
    return rssi, snr_q / 4, rx_time, bytes(payload[7:])
