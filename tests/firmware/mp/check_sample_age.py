# A reading's sample time (journaled in its frame: fp/radio_frame.py PORT_SAMPLED) and its age on the air
# (fp/radio_frame.py aged, docs/radio.md 0.9) under micropython, in the cwd: fresh readings
# stay port-1 LPP, a reading that waited goes out on port 8 with its age; the sample time
# survives a reboot and a compaction; the clock starts above it after a cold boot (fp/app.py).
# Prints "OK" or FAIL lines.
from fp import config, start
from fp import radio_frame as rf
from fp.device import Device
from fp.fcnt import FrameCounter
from fp.hal.stepclock import StepClock
from fp.hal.unix import UnixBoard
from fp.journal import Journal

fails = []
PORT_AGED = 8  # docs/radio.md 0.9 (fp/radio_frame.py keeps it a private const: no RAM)


def expect(what, got, want):
    if got != want:
        fails.append(what + ": got " + repr(got) + " want " + repr(want))


def age_of(frame):
    # (port, age s, readings) of a signed v1 frame, the LEB128 read back by hand
    port = frame[13]
    body = frame[rf.HEADER : len(frame) - 4]
    if port != PORT_AGED:
        return port, 0, bytes(body)
    age, shift, i = 0, 0, 0
    while True:
        b = body[i]
        age |= (b & 0x7F) << shift
        shift += 7
        i += 1
        if not b & 0x80:
            return port, age, bytes(body[i:])


def device(clock, dr=5):
    cfg = config.validate({"id": "0123456789abcdef", "key": "11" * 16, "dr": dr, "activation": "v1"})
    hal = UnixBoard({"name": "unix"}, cfg, clock=clock)
    j = Journal("journal", seg_bytes=256, max_segments=3)
    start._clock_above(clock, j.max_t)  # as fp/start.py does at boot
    return Device(cfg, "config.json", hal, j, FrameCounter("fcnt", floor=j.max_fcnt + 1))


clock = StepClock(start_ms=1000)
dev = device(clock)
fresh = dev.take_reading()
clock.advance(400)  # sent 0.4 s after it was sampled: fresh, plain LPP
port, age, lpp = age_of(dev.next_uplink())
expect("fresh reading: port 1", (port, age), (1, 0))
dev.journal.done(fresh)

waited = dev.take_reading()
status = dev.queue_status(0)  # not a reading: never aged
clock.advance(7200 * 1000 + 600)  # two hours in the journal (the bridge down)
port, age, lpp2 = age_of(dev.next_uplink())
expect("waited 2 h: port 8, its age", (port, age), (PORT_AGED, 7201))
expect("the readings unchanged", lpp2[:2], lpp[:2])
dev.journal.done(waited)
expect("a status goes as it is", dev.next_uplink()[13], rf.PORT_STATUS)
dev.journal.done(status)

# a cold boot (power cut): a new clock from 0, the same journal
later = dev.take_reading()
clock.advance(30 * 1000)
dev.journal.close()
clock = StepClock(start_ms=0)
dev = device(clock)
expect("the clock starts above the newest sample", clock.ms() > dev.journal.max_t * 100, True)
clock.advance(60 * 1000)
port, age, _ = age_of(dev.next_uplink())
# a lower bound: the clock went on from 1 s above the newest sample, so the 60 s since the
# boot count, the 30 s between that sample and the cut (and the time off) are unknown
expect("age across a cold boot", (port, age), (PORT_AGED, 61))

# a compaction keeps every sample time
for _ in range(12):
    dev.take_reading()
    clock.advance(1000)
dev.journal.compact()
ages = []
for _ in dev.journal.pending():
    ages.append(age_of(dev.next_uplink())[1])
    dev.journal.done(dev.head_fcnt)
expect("ages after compaction, oldest first", ages[1:], sorted(ages[1:], reverse=True))
expect("ages after compaction, newest", ages[-1], 1)
dev.journal.close()

# a reading journaled by older firmware (no sample time) goes out plain
j = Journal("journal")
j.append(rf.unsigned(rf.KIND_UPLINK, dev.dev_id, 1000, 1, b"\x01\x67\x00\xd7"))
j.close()
dev = device(StepClock(start_ms=0))
expect("no sample time: port 1", age_of(dev.next_uplink())[:2], (1, 0))
dev.journal.done(1000)
dev.journal.close()

for f in fails:
    print("FAIL", f)
print("OK" if not fails else "FAILED")
