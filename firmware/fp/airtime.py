# LoRa time on air and the duty-cycle budget: what a module keeps loaded. The regional table
# (fp/region.py) is read at boot and dropped.
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


_BUCKET_MS = const(60000)  # airtime is summed per minute
_BUCKETS = const(61)  # the current minute and the 60 before it: always at least the last hour


class DutyBudget:
    # Airtime summed per minute over the last 61 minutes (fixed memory, whatever the
    # number of transmissions; the old log of one entry per transmission held 64 and
    # then refused to send, so a fast node deferred and its journal overflowed). A
    # send is allowed only if the airtime of the buckets covering the last hour plus
    # its own stays within duty * 1 h. Those buckets cover every transmission that
    # started in the hour before now (and up to a minute more: conservative), so no
    # one-hour window ever exceeds the limit.
    def __init__(self, duty):
        self.duty = duty
        self.limit_ms = int(duty * _BUCKET_MS * (_BUCKETS - 1)) if duty else 0
        self._air = array("I", bytes(4 * _BUCKETS))
        self._cur = 0  # minute number of the newest bucket
        self.total_ms = 0  # airtime since boot
        self.deferred = 0  # sends put off for lack of budget
        self.day = None  # fp/daycount.py DayCount, where the region also counts uplinks a day

    def _advance(self, now_ms):
        b = now_ms // _BUCKET_MS
        if b <= self._cur:
            return
        for k in range(max(self._cur + 1, b - _BUCKETS + 1), b + 1):
            self._air[k % _BUCKETS] = 0
        self._cur = b

    def used_ms(self, now_ms):
        self._advance(now_ms)
        total = 0
        for v in self._air:
            total += v
        return total

    def wait_ms(self, now_ms, airtime_ms):
        # 0 if a transmission of airtime_ms may start now, else how long to wait.
        wait = self.day.wait_ms(now_ms) if self.day is not None else 0
        if wait:
            return wait
        if not self.duty:
            return 0
        if airtime_ms > self.limit_ms:
            return -1  # never fits: the caller must refuse the frame
        used = self.used_ms(now_ms)
        if used + airtime_ms <= self.limit_ms:
            return 0
        for k in range(self._cur - _BUCKETS + 1, self._cur + 1):  # oldest first
            used -= self._air[k % _BUCKETS]
            if used + airtime_ms <= self.limit_ms:
                return (k + _BUCKETS) * _BUCKET_MS - now_ms  # when bucket k leaves
        return (self._cur + _BUCKETS) * _BUCKET_MS - now_ms

    def record(self, now_ms, airtime_ms):
        self._advance(now_ms)
        self._air[self._cur % _BUCKETS] += airtime_ms
        self.total_ms += airtime_ms
        if self.day is not None:
            self.day.record(now_ms)
