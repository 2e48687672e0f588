# LoRaWAN 1.0.4 PHYPayload structure, without keys or crypto: what a bridge checks before it
# forwards a frame (it never holds keys), and the constants fp/lorawan/frames.py builds on; and
# the class A receive windows' timing and channels, which node and bridge share (below). Kept
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


# --- Class A receive windows ------------------------------------------------------------
# LoRaWAN class A receive windows (L2 1.0.4 section 3.3): RX1 opens RECEIVE_DELAY1 (the join
# accept's RxDelay, 1 s by default) after the END of an uplink, on the uplink's frequency at
# the RX1 data rate; RX2 one second later on the region's RX2 frequency and data rate
# (window() below). After a join request: JOIN_ACCEPT_DELAY1 (5 s) and 6 s. A node listens in
# each window only as long as a preamble takes to detect, plus a margin either side for the
# clocks (fp/lorawan/otaa.py `rx`): a downlink that starts outside both windows, or on
# another frequency or data rate, is not heard. The bridge starts its transmission at a
# window's start (fp/roles/bridge.py `tx_downlink`).
#
# Virtual modules (clock scale S > 1): their time runs S times faster, but the edge that
# builds the downlink answers in real time (a SQLite commit, the serial link: tens of real ms).
# So on a scaled clock each delay is at least _HOST_MS real ms (RX1 after the uplink, RX2 after
# RX1) and the margin _MARGIN_MS real ms; node and bridge compute the same (same S). At S = 1
# (every board) the timing is the specification's.
#
# Here, in a module both roles load, and with few names on purpose: every identifier is a
# qstr, and a virtual heltec_v2 bridge's qstr pool is a few identifiers short of doubling
# (15 KB at once, which its heap, cut up by the emulated radio, does not have).
_MARGIN_MS = const(10)  # a window opens this long before its start and stays this long after
_HOST_MS = const(30)  # scaled clocks: the real ms the edge gets before each window


def window(region, n, freq_khz, dr, dl):
    # (frequency kHz, sf, bw kHz) of receive window n (1 or 2) after an uplink on freq_khz at
    # dr; dl: the join accept's DLSettings (RX1DROffset bits 6..4, RX2 data rate 3..0), None
    # for the region's defaults; or RegionError. (Argument names are qstrs: few and reused.) From the LoRaWAN Regional Parameters RP002-1.0.3 (region: RX2 default):
    #   EU868 (sections 2.4.7, 2.4.9): RX2 869.525 MHz DR0; RX1 on the uplink's channel,
    #     DR = max(0, DR - offset), offset 0..5.
    #   US915 (2.5.7, 2.5.9): RX2 923.3 MHz DR8; RX1 on 923.3 + 0.6 x (uplink channel mod 8)
    #     MHz, DR = 10 + DR - offset (DR4: 13 - offset) within DR8..13: SF12..SF7 at 500 kHz.
    #   AS923 (2.7.7, 2.7.9; AS923-1): RX2 923.2 MHz DR2; RX1 on the uplink's channel,
    #     DR - offset (offsets 6 and 7: DR + 1, DR + 2) within DR0..5 (DownlinkDwellTime 0). The
    #     same RX2 as Semtech's LoRaMac-node, src/mac/region/RegionAS923.h (AS923_RX_WND_2_FREQ, _DR).
    from fp.airtime import RegionError, region_params
    offset = dl >> 4 & 7 if dl else 0
    rx2 = None if dl is None else dl & 15
    # a Sigfox-class budget (fp/airtime.py "sigfox") is on the EU868 band: EU868's windows
    i = ("EU868", "US915", "AS923", "sigfox").index(region) if region in ("EU868", "US915", "AS923", "sigfox") else -1
    i = 0 if i == 3 else i
    if rx2 is None and i >= 0:
        rx2 = (0, 8, 2)[i]
    if i < 0 or (i == 1 and ((rx2 or 0) > 13 or n == 1 and dr > 4)):
        raise RegionError("no LoRaWAN receive window in %s DR%r" % (region, rx2))
    khz = freq_khz
    if n == 2:
        khz, dr = (869525, 923300, 923200)[i], rx2
    elif i == 1:
        khz = 923300 + 600 * (((khz - 902300) // 200) % 8)
        dr = min(13, max(8, (13 if dr == 4 else 10 + dr) - offset))
    elif i == 2:
        dr = min(5, max(0, dr - offset if offset < 6 else dr + offset - 5))
    else:
        dr = max(0, dr - offset)
    if i == 1 and dr >= 8:
        return khz, 20 - dr, 500
    _, sf, bw, _ = region_params(region, dr)
    return khz, sf, bw


def rx_timing(n, scale):
    # (RX1 start, RX2 start, margin) in clock ms: the starts after the end of the uplink, for
    # RECEIVE_DELAY1 `n` s; each window opens `margin` before its start
    d = n * 1000
    gap = 1000
    m = _MARGIN_MS
    if scale > 1:
        floor = int(_HOST_MS * scale)
        d = max(d, floor)
        gap = max(gap, floor)
        m = int(_MARGIN_MS * scale)
    return d, d + gap, m
