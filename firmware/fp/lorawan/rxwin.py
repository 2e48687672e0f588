# LoRaWAN class A receive windows (L2 1.0.4 section 3.3): RX1 opens RECEIVE_DELAY1 (the join
# accept's RxDelay, 1 s by default) after the END of an uplink, on the uplink's frequency at
# the RX1 data rate; RX2 one second later on the region's RX2 frequency and data rate
# (fp/airtime.window). After a join request: JOIN_ACCEPT_DELAY1 (5 s) and 6 s. A node listens
# in each window only as long as a preamble takes to detect (plus a margin either side for the
# clocks): a downlink that starts outside both windows, or on another frequency or data rate,
# is not heard. The bridge (fp/roles/bridge.py) starts its transmission at a window's start.
#
# Virtual modules (clock scale S > 1): their time runs S times faster, but the edge that
# builds the downlink answers in real time (a SQLite commit, the serial link: tens of real ms).
# So on a scaled clock each delay is at least _HOST_MS real ms (RX1 after the uplink, RX2 after
# RX1) and the margin _MARGIN_MS real ms; node and bridge compute the same (same S). At S = 1
# (every board) the timing is the specification's.
from micropython import const

JOIN_DELAY1 = const(5)  # JOIN_ACCEPT_DELAY1, s (JOIN_ACCEPT_DELAY2 one second later)
_MARGIN_MS = const(10)  # a window opens this long before its start and stays this long after
_HOST_MS = const(30)  # scaled clocks: the real ms the edge gets before each window
_PREAMBLE = const(8)  # symbols (fp/hal/board.lora_cfg preamble_len)


def delays(rx1_delay_s, scale):
    # (RX1, RX2) starts in clock ms after the end of the uplink
    d1 = rx1_delay_s * 1000
    gap = 1000
    if scale > 1:
        floor = int(_HOST_MS * scale)
        d1 = max(d1, floor)
        gap = max(gap, floor)
    return d1, d1 + gap


def margin(scale):
    return int(_MARGIN_MS * scale) if scale > 1 else _MARGIN_MS


def open_ms(sf, bw_khz, scale):
    # How long a window stays open: the preamble (8 + 4.25 symbols) and a margin either side.
    return 2 * margin(scale) + ((_PREAMBLE * 4 + 17) * (1 << sf) // bw_khz + 3) // 4 + 1


class Windows:
    # A node's receive windows. rx1_delay, offset (RX1DROffset) and rx2_dr come from the join
    # accept (fp/lorawan/join.py) or are the region's defaults (ABP).
    def __init__(self, modem, clock, region, up_khz, up_dr, up_sf, up_bw, power=None):
        from fp.airtime import RX2
        self.modem = modem
        self.power = power  # called with "rx" when a window opens, "standby" when it closes
        self.clock = clock
        self.region = region
        self.up = (up_khz, up_sf, up_bw)
        self.up_dr = up_dr
        self.rx1_delay = 1
        self.offset = 0
        self.rx2_dr = self.rx2_default = RX2[region][1]
        self.heard = 0  # the window the last downlink came in (0: none), for traces

    def set(self, rx1_delay, dl_settings):
        # RxDelay 0 means 1 s (L2 1.0.4 section 5.7); DLSettings: RX1DROffset bits 6..4, RX2DataRate 3..0
        self.rx1_delay = rx1_delay or 1
        self.offset = (dl_settings >> 4) & 7
        self.rx2_dr = dl_settings & 0x0F

    async def recv(self, n, t_end, join=False):
        # Listen in window n after an uplink that ended at clock ms t_end: the packet whose
        # preamble came in the window, or None. The radio stands by before and after.
        from fp.airtime import window
        clock = self.clock
        scale = clock.scale
        # a join's windows have the region's defaults: the accept's DLSettings are for its session
        offset, rx2_dr = (0, self.rx2_default) if join else (self.offset, self.rx2_dr)
        khz, sf, bw = window(self.region, n, self.up[0], self.up_dr, offset, rx2_dr)
        wait = t_end + delays(JOIN_DELAY1 if join else self.rx1_delay, scale)[n - 1] - margin(scale) - clock.ms()
        if wait > 0:
            await clock.sleep_ms(wait)
        retune = (khz, sf, bw) != self.up
        if retune:
            self.modem.configure({"freq_khz": khz, "sf": sf, "bw": str(bw)})
        if self.power:
            self.power("rx")
        try:
            pkt = await self.modem.recv(timeout_ms=open_ms(sf, bw, scale))
        finally:
            self.modem.standby()
            if self.power:
                self.power("standby")
            if retune:  # back to the uplink's channel: the radio is always ready to send
                self.modem.configure({"freq_khz": self.up[0], "sf": self.up[1], "bw": str(self.up[2])})
        if pkt is not None:
            self.heard = n
        return pkt
