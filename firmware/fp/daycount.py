# The uplinks-per-day law of a Sigfox-class profile (140 a day): a count per hour over
# the last 25 hours, in fixed memory whatever the number of uplinks, kept the way
# fp/airtime.py DutyBudget keeps airtime per minute. An uplink is allowed only if the
# uplinks in the buckets covering the last 24 h stay below the cap; those buckets hold
# every uplink that started in the 24 h before now (and up to an hour more:
# conservative), so no 24-hour window ever holds more than the cap. A reading that
# cannot go waits in the journal (fp/roles/node.py), never dropped. Its ring mirrors
# DutyBudget's rather than sharing a base class: a shared one cost every node 770 bytes
# of a 64K heap (measured in the 64K day), and only a Sigfox-class node loads this.
from array import array

from micropython import const

HOUR_MS = const(3600000)
DAY_MS = const(86400000)
RESENDS = 1.25  # uplinks a frame costs: its resends at 10 % loss each way (x1.23)
BUCKETS = const(25)  # the current hour and the 24 before it: always at least the last day


class DayCount:
    def __init__(self, cap):
        self.cap = cap
        self.counts = array("H", bytes(2 * BUCKETS))
        self.cur = 0  # hour number of the newest bucket

    def _advance(self, now_ms):
        h = now_ms // HOUR_MS
        if h <= self.cur:
            return
        for k in range(max(self.cur + 1, h - BUCKETS + 1), h + 1):
            self.counts[k % BUCKETS] = 0
        self.cur = h

    def used(self, now_ms):
        self._advance(now_ms)
        total = 0
        for v in self.counts:
            total += v
        return total

    def wait_ms(self, now_ms):
        # 0 if one more uplink may start now, else how long until one may.
        used = self.used(now_ms)
        if used < self.cap:
            return 0
        for k in range(self.cur - BUCKETS + 1, self.cur + 1):  # oldest first
            used -= self.counts[k % BUCKETS]
            if used < self.cap:
                return (k + BUCKETS) * HOUR_MS - now_ms  # when bucket k leaves
        return (self.cur + BUCKETS) * HOUR_MS - now_ms

    def record(self, now_ms):
        self._advance(now_ms)
        self.counts[self.cur % BUCKETS] += 1

    def status_ms(self, ms):
        # Between statuses (status_every: ms): no more than a quarter of the day's uplinks go
        # to statuses, so readings keep the rest.
        return max(ms, 4 * DAY_MS // self.cap)

    def reading_ms(self, status_ms):
        # Between readings: what resends leave of the day's uplinks, less the statuses, is the
        # readings' share (fp/roles/node.py interval_ms; reported like the duty cycle's).
        share = self.cap / RESENDS - DAY_MS // status_ms
        return int(DAY_MS / max(share, 1))
