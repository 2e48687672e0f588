# fp/resume.py with a Sigfox-class day count: a node that deep-sleeps keeps its uplinks of the
# last 25 hours, or it would wake with a fresh 140 and break the day's law. Prints JSON.
import json

from fp import resume
from fp.airtime import DutyBudget
from fp.region import UPLINKS_PER_DAY
from fp.daycount import DayCount


class Counter:
    next = 40
    limit = 64


class Clock:
    def resume(self, ms, wall):
        self.at = (ms, wall)


HOUR = 3600000
before = DutyBudget(0.01)
before.day = DayCount(UPLINKS_PER_DAY["sigfox"])
for i in range(139):  # 139 uplinks over the last 5 hours
    before.record(20 * HOUR + i * 120000, 1500)
rec = resume.pack(25 * HOUR, 1000, (1, 2, 3, 0), Counter(), 900000, before)
after = DutyBudget(0.01)
after.day = DayCount(UPLINKS_PER_DAY["sigfox"])
back = resume.unpack(rec, len(after._air), len(after.day.counts))
resume.restore(back, Clock(), Counter(), after, 0)
now = 25 * HOUR
out = {
    "used": after.day.used(now),
    "wait_one": after.wait_ms(now, 1500),
    "wait_two": (after.record(now, 1500), after.wait_ms(now + 1, 1500))[1],
    # a record packed without the day counts (another region) is not taken for one with them
    "other": resume.unpack(resume.pack(now, 1000, (1, 2, 3, 0), Counter(), 900000, DutyBudget(0.01)),
                           len(after._air), len(after.day.counts)),
}
print(json.dumps(out))
