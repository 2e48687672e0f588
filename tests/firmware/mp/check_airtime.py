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
b = DutyBudget(0.01)
# 36 s per hour: 21 frames of 1.65 s fit, the 22nd must wait until the first leaves the window
starts = []
t = 0
while len(starts) < 22:
    w = b.wait_ms(t, 1647)
    if w == 0:
        b.record(t, 1647)
        starts.append(t)
        t += 1000
    else:
        t += w
out["starts"] = starts
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
starts = []
t = 0
while t < 48 * 3600000:
    w = b.wait_ms(t, 100)
    if w == 0:
        b.record(t, 100)
        starts.append(t)
        t += 60000
    else:
        t += w
out["day_starts"] = starts
out["day_after"] = b.wait_ms(t, 100)
out["day_cap"] = b.day.cap
out["no_day"] = DutyBudget(0.01).day is None
print(json.dumps(out))
