# Times the firmware's hot paths under micropython. usage: bench_ops.py <seconds>
# Each operation runs in chunks until it has taken at least <seconds>; prints one JSON object:
# microseconds per operation, and how many were timed. The journal is opened with the firmware's
# own Journal, whose every record is flushed (an fsync on the unix port).
import json
import sys
import time

from fp import lpp
from fp import radio_frame as rf
from fp import v1frame as v1
import v1build
from fp.journal import Journal

min_us = int(float(sys.argv[1]) * 1_000_000)
dev = b"\x01\x23\x45\x67\x89\xab\xcd\xef"
key = bytes(range(1, 17))
CHUNK = 200


def per_op(name, make, fn):
    # make(i) builds an argument outside the timed part; fn(arg, i) is the operation timed
    spent, done = 0, 0
    while spent < min_us:
        args = [make(done + k) for k in range(CHUNK)]
        t0 = time.ticks_us()
        for k in range(CHUNK):
            fn(args[k], done + k)
        spent += time.ticks_diff(time.ticks_us(), t0)
        done += CHUNK
    out[name + "_us"] = spent / done
    out[name + "_n"] = done


out = {}
reading = lpp.standard_reading(21.5, 48.5, 3.71)
per_op("build_uplink", lambda i: None, lambda _a, i: v1build.build_uplink(dev, key, i, 1, reading))
frame = v1build.build_downlink(dev, key, 7)
per_op("open_downlink", lambda i: None, lambda _a, i: v1.open_downlink(frame, dev, key, 7))
# The journal in its steady state: a chunk of readings appended, then each marked done (acked), so
# it never fills; appends and dones timed apart, each until it has taken <seconds>.
j = Journal("journal", capacity=256, seg_bytes=4096)
append_us = done_us = count = 0
while append_us < min_us or done_us < min_us:
    # unsigned, as the device journals them (the MIC is made when a frame is sent)
    frames = [rf.unsigned(rf.KIND_UPLINK, dev, count + k, 1, b"\x01\x67\x00\xd7") for k in range(100)]
    t0 = time.ticks_us()
    for f in frames:
        j.append(f)
    t1 = time.ticks_us()
    for k in range(100):
        j.done(count + k)
    append_us += time.ticks_diff(t1, t0)
    done_us += time.ticks_diff(time.ticks_us(), t1)
    count += 100
out["journal_append_us"] = append_us / count
out["journal_done_us"] = done_us / count
out["journal_n"] = count
print(json.dumps(out))
