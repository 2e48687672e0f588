# Times the firmware's hot paths under micropython. usage: bench_ops.py <n>
# Prints one JSON object: microseconds per operation.
import json
import sys
import time

from fp import lpp
from fp import radio_frame as rf
from fp.journal import Journal

n = int(sys.argv[1])
dev = b"\x01\x23\x45\x67\x89\xab\xcd\xef"
key = bytes(range(1, 17))


def per_op(fn):
    t0 = time.ticks_us()
    for i in range(n):
        fn(i)
    return time.ticks_diff(time.ticks_us(), t0) / n


out = {}
out["build_uplink_us"] = per_op(
    lambda i: rf.build_uplink(dev, key, i, 1, lpp.standard_reading(21.5, 48.5, 3.71))
)
frame = rf.build_downlink(dev, key, 7)
out["open_downlink_us"] = per_op(lambda i: rf.open_downlink(frame, dev, key, 7))
j = Journal("journal", capacity=max(8, n), seg_bytes=4096)
# unsigned, as the device journals them (the MIC is made when a frame is sent)
frames = [rf.unsigned(rf.KIND_UPLINK, dev, i, 1, b"\x01\x67\x00\xd7") for i in range(n)]
out["journal_append_us"] = per_op(lambda i: j.append(frames[i]))
out["journal_done_us"] = per_op(lambda i: j.done(i))
print(json.dumps(out))
