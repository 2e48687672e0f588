# LoRa time on air, regional limits and the duty-cycle budget.
# Time on air follows Semtech AN1200.13 (SX1276 datasheet section 4.1.1.7):
#   Tsym = 2^SF / BW
#   Tpreamble = (preamble + 4.25) * Tsym
#   payload symbols = 8 + max(ceil((8PL - 4SF + 28 + 16CRC - 20IH) / (4(SF - 2DE))) * (CR + 4), 0)
# with DE (low data rate optimise) on when a symbol lasts 16 ms or more.
from array import array

from micropython import const


def time_on_air_us(payload_len, sf, bw_khz=125, cr=5, preamble=8, explicit_header=True, crc=True):
    # cr is the denominator of the coding rate 4/cr (5..8)
    tsym_us = (1 << sf) * 1000 // bw_khz
    de = 1 if tsym_us >= 16000 else 0
    ih = 0 if explicit_header else 1
    num = 8 * payload_len - 4 * sf + 28 + (16 if crc else 0) - 20 * ih
    den = 4 * (sf - 2 * de)
    blocks = (num + den - 1) // den if num > 0 else 0
    n_payload = 8 + blocks * cr
    # (preamble + 4.25) * tsym, kept in integers
    return (preamble * 4 + 17) * tsym_us // 4 + n_payload * tsym_us


# Regions: duty cycle (fraction of time, None: no duty-cycle rule), and per
# data rate (SF, bandwidth kHz, largest MAC payload in bytes) from the LoRaWAN
# Regional Parameters (RP002). "sigfox" is the Sigfox-class budget: 12 bytes up.
REGIONS = {
    "EU868": (0.01, ((12, 125, 51), (11, 125, 51), (10, 125, 51), (9, 125, 115), (8, 125, 222),
                     (7, 125, 222))),
    "US915": (None, ((10, 125, 11), (9, 125, 53), (8, 125, 125), (7, 125, 242))),
    "AS923": (0.01, ((12, 125, 59), (11, 125, 59), (10, 125, 59), (9, 125, 123), (8, 125, 250),
                     (7, 125, 250))),
    "sigfox": (0.01, ((12, 125, 12),)),
}


class RegionError(ValueError):
    pass


def region_params(region, dr):
    # Returns (duty, sf, bw_khz, max_payload) or raises RegionError naming the problem.
    entry = REGIONS.get(region)
    if entry is None:
        raise RegionError("region %r unknown (known: %s)" % (region, ", ".join(sorted(REGIONS))))
    duty, rates = entry
    if not 0 <= dr < len(rates):
        raise RegionError("dr %r out of range 0..%d for %s" % (dr, len(rates) - 1, region))
    sf, bw, max_payload = rates[dr]
    return duty, sf, bw, max_payload


_WINDOW_MS = const(3600000)  # duty cycle is judged over any one hour


class DutyBudget:
    # Sliding one-hour window of past transmissions (start ms, airtime ms). A
    # send is allowed only if the airtime of every transmission that started in
    # the last hour plus its own stays within duty * 1 h. Checking at each start
    # bounds every window that ends at a later start, so no hour ever exceeds the
    # limit. A full ring is treated as "no room" (conservative, bounded memory).
    def __init__(self, duty, slots=64):
        self.duty = duty
        self.limit_ms = int(duty * _WINDOW_MS) if duty else 0
        self._start = array("q", bytes(8 * slots)) if _has_q() else [0] * slots
        self._air = array("I", bytes(4 * slots))
        self._slots = slots
        self._head = 0  # oldest
        self._n = 0
        self.total_ms = 0  # airtime since boot
        self.deferred = 0  # sends put off for lack of budget

    def _expire(self, now_ms):
        while self._n and now_ms - self._start[self._head] >= _WINDOW_MS:
            self._head = (self._head + 1) % self._slots
            self._n -= 1

    def used_ms(self, now_ms):
        self._expire(now_ms)
        total = 0
        for i in range(self._n):
            total += self._air[(self._head + i) % self._slots]
        return total

    def wait_ms(self, now_ms, airtime_ms):
        # 0 if a transmission of airtime_ms may start now, else how long to wait.
        if not self.duty:
            return 0
        if airtime_ms > self.limit_ms:
            return -1  # never fits: the caller must refuse the frame
        self._expire(now_ms)
        used = self.used_ms(now_ms)
        i = 0
        wait = 0
        while (used + airtime_ms > self.limit_ms or self._n - i >= self._slots) and i < self._n:
            j = (self._head + i) % self._slots
            used -= self._air[j]
            wait = self._start[j] + _WINDOW_MS - now_ms
            i += 1
        return max(0, wait)

    def record(self, now_ms, airtime_ms):
        self._expire(now_ms)
        if self._n == self._slots:  # only reachable without a duty rule
            self._head = (self._head + 1) % self._slots
            self._n -= 1
        self._start[(self._head + self._n) % self._slots] = now_ms
        self._air[(self._head + self._n) % self._slots] = airtime_ms
        self._n += 1
        self.total_ms += airtime_ms


def _has_q():
    try:
        array("q", bytes(8))
        return True
    except ValueError:
        return False
