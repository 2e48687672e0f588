# The energy pace of an update over the air (fp/update_air.py AirReceiver paced_ms / spend), under
# micropython, in the current folder as the module's flash: an offer with a pace of `gap` s and
# `burst` requests, a request asked for every second of `span` simulated seconds; then the record read
# back by a new receiver (a reboot on the same clock: a deep sleep), a clock that starts again (a
# power cut), an offer without a pace, and bad paces. Prints one JSON line; the pytest side checks
# the law: within any span of L seconds, at most burst + L / gap requests.
#   check_update_pace.py <gap s> <burst> <span s>
import json
import struct
import sys

from fp import store
from fp.update_air import AirReceiver, Refused, battery_low

gap, burst, span = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
PID = bytes(range(16))


def offer(rx, pace=None, size=4000):
    body = b"\x01" + PID + struct.pack(">I", size)
    if pace is not None:
        body += struct.pack(">HH", *pace)
    return rx.offer(body, 40)


rx = AirReceiver("./")
offer(rx, (gap, burst))
sent = []
for t in range(span):
    if rx.paced_ms(t * 1000) == 0:
        rx.spend(t * 1000)
        sent.append(t)

# a deep sleep: the record on flash, the same clock: no request more than the pace allows
later = span
again = AirReceiver("./")
after_sleep = []
for t in range(later, later + 3 * gap):
    if again.paced_ms(t * 1000) == 0:
        again.spend(t * 1000)
        after_sleep.append(t)

# a power cut: the clock starts from 0 with the record's tat far ahead of it
cut = AirReceiver("./")
after_cut = []
for t in range(0, 3 * gap):
    if cut.paced_ms(t * 1000) == 0:
        cut.spend(t * 1000)
        after_cut.append(t)

# the same offer again with another pace takes it from now on; an offer with no pace has none
offer(cut, (gap * 2, 1))
repaced = (cut.gap, cut.burst)
cut.forget()
plain = AirReceiver("./")
offer(plain, None)
unpaced = sum(1 for t in range(100) if plain.paced_ms(t * 1000) == 0)
refused = []
for bad in ((0, 5), (5, 0)):
    try:
        offer(plain, bad, size=5000)
    except Refused as e:
        refused.append(e.args[0])
plain.forget()
# a record in the layout before the pace (id, size, chunk, bitmap): not this code's, started over
store.write_atomic("./.update-air", PID + struct.pack(">IB", 4000, 40) + bytes(13))
old = AirReceiver("./")


class Hal:
    # the board's battery as the HAL reports it (volts, or None: not measured) and its profile
    def __init__(self, battery, v):
        self.profile = {"battery": battery} if battery is not None else {}
        self.v = v

    def battery_v(self):
        return self.v


floor = {"capacity_mah": 2600, "update_min_v": 3.6}
low = [
    battery_low(Hal(floor, 3.55)),
    battery_low(Hal(floor, 3.65)),
    battery_low(Hal(floor, None)),
    battery_low(Hal({"capacity_mah": 2600}, 3.0)),
    battery_low(Hal(None, 3.0)),
]
print(
    json.dumps(
        {
            "low": low,
            "sent": sent,
            "after_sleep": after_sleep,
            "after_cut": after_cut,
            "repaced": repaced,
            "unpaced": unpaced,
            "refused": refused,
            "old_record": old.id != b"",
        }
    )
)
