# LoRaWAN 1.0.4 PHYPayload structure, without keys or crypto: what a bridge checks before it
# forwards a frame (it never holds keys), and the constants fp/lorawan/frames.py builds on. Kept
# apart so a bridge does not load the AES and CMAC code (its heap is the emulated radio's too).
import struct

from micropython import const

# MHDR: MType in the top three bits, Major 0 (LoRaWAN R1)
JOIN_REQUEST = const(0x00)
JOIN_ACCEPT = const(0x20)
UNCONFIRMED_UP = const(0x40)
_UNCONFIRMED_DOWN = const(0x60)
CONFIRMED_UP = const(0x80)
_CONFIRMED_DOWN = const(0xA0)
UPLINKS = (UNCONFIRMED_UP, CONFIRMED_UP)
DOWNLINKS = (_UNCONFIRMED_DOWN, _CONFIRMED_DOWN)

_UP = const(0)
_DOWN = const(1)
FCTRL_ACK = const(0x20)
_FCTRL_ADR = const(0x80)
OVERHEAD = const(13)  # MHDR 1, DevAddr 4, FCtrl 1, FCnt 2, FPort 1, MIC 4 (no FOpts)
_MIN_DATA = const(12)  # a frame without FPort
JOIN_REQUEST_SIZE = const(23)
_MAX_FRAME = const(255)


class FrameError(ValueError):
    # args[0]: a short reason code (short, long, mtype, major, fopts, mic,
    # join); args[1]: human text for LOG frames and the port-3 status.
    pass



def _check(frame):
    # The structure checks of a data frame; returns (mhdr, end of FOpts). Raises FrameError.
    n = len(frame)
    if n < _MIN_DATA:
        raise FrameError("short", "data frame of %d bytes, at least %d" % (n, _MIN_DATA))
    if n > _MAX_FRAME:
        raise FrameError("long", "frame of %d bytes, at most %d" % (n, _MAX_FRAME))
    mhdr = frame[0]
    if mhdr & 0x03:
        raise FrameError("major", "LoRaWAN major version %d" % (mhdr & 3))
    if mhdr & 0xE0 not in UPLINKS + DOWNLINKS or mhdr & 0x1C:
        raise FrameError("mtype", "MHDR 0x%02x is not a data frame" % mhdr)
    nopts = frame[5] & 0x0F
    end = 8 + nopts
    if end > n - 4:
        raise FrameError("fopts", "FOpts of %d bytes overrun the frame" % nopts)
    if end < n - 4 and frame[end] == 0 and nopts:
        raise FrameError("fopts", "MAC commands in both FOpts and FPort 0")
    return mhdr, end


def fcnt16(frame):
    # The checks of parse(), and the 16-bit FCnt, without copying a field: what a bridge does
    # with every packet it hears (no garbage per packet on a 64K heap).
    _check(frame)
    return frame[6] | frame[7] << 8


def parse(frame):
    # Structure only (a bridge has no keys): returns (mhdr, devaddr, fctrl,
    # fcnt16, fopts, fport or None, encrypted FRMPayload). Raises FrameError.
    mhdr, end = _check(frame)
    n = len(frame)
    devaddr, fctrl, fcnt = struct.unpack_from("<IBH", frame, 1)
    fopts = bytes(frame[8:end])
    if end == n - 4:
        return mhdr, devaddr, fctrl, fcnt, fopts, None, b""
    return mhdr, devaddr, fctrl, fcnt, fopts, frame[end], bytes(frame[end + 1:n - 4])
