# Prints JSON: time-on-air figures, region limits and duty-budget decisions, for pytest to check.
import json

from fp.airtime import UPLINKS_PER_DAY, DutyBudget, RegionError, region_params, time_on_air_us
from fp.daycount import DayCount

out = {
    "toa": [
        time_on_air_us(n, sf, bw, cr, pre)
        for n, sf, bw, cr, pre in (
            (13, 7, 125, 5, 8),
            (51, 12, 125, 5, 8),
            (29, 12, 125, 5, 8),
            (10, 9, 125, 5, 8),
            (20, 7, 250, 8, 12),
        )
    ],
    "eu868": [region_params("EU868", dr) for dr in range(6)],
    "us915_dr0": region_params("US915", 0),
    "sigfox": region_params("sigfox", 0),
}
try:
    region_params("EU868", 6)
except RegionError as e:
    out["bad_dr"] = str(e)


def starts(b, airtime_ms, gap_ms, until):
    # When each transmission starts for a sender that asks gap_ms after its last one, waiting
    # whenever the budget says so, until until(starts, t); returns (starts, t)
    out = []
    t = 0
    while not until(out, t):
        w = b.wait_ms(t, airtime_ms)
        if w == 0:
            b.record(t, airtime_ms)
            out.append(t)
            t += gap_ms
        else:
            t += w
    return out, t


b = DutyBudget(0.01)
# 36 s per hour: 21 frames of 1.65 s fit, the 22nd must wait until the first leaves the window
out["starts"], t = starts(b, 1647, 1000, lambda s, t: len(s) >= 22)
out["too_big"] = b.wait_ms(t, 40000)
# many short frames: 240 SF7 frames of 66 ms in an hour (15.8 s of 36 s) all go at once,
# however many there are (the old log of 64 entries refused the 65th of the hour)
b = DutyBudget(0.01)
out["many_waits"] = 0
for i in range(240):
    if b.wait_ms(i * 15000, 66):
        out["many_waits"] += 1
    else:
        b.record(i * 15000, 66)
out["many_used"] = b.used_ms(239 * 15000)
# Sigfox-class: 140 uplinks in any 24 h. A node asking every minute for two days: each uplink starts
# when the budget says it may; their starts are checked (every 24 h window) by pytest
b = DutyBudget(0.01)
b.day = DayCount(UPLINKS_PER_DAY["sigfox"])  # as fp/device.py gives a node of such a region
out["day_starts"], t = starts(b, 100, 60000, lambda s, t: t >= 48 * 3600000)
out["day_after"] = b.wait_ms(t, 100)
out["day_cap"] = b.day.cap
out["no_day"] = DutyBudget(0.01).day is None
print(json.dumps(out))
