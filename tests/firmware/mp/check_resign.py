# Device.next_uplink (sign at transmission, with the key of the moment) and the
# refusal policy (fp/refusal.py) under micropython, in the cwd. Prints "OK" or FAIL lines.
from binascii import unhexlify

from fp import config
from fp import radio_frame as rf
from fp import v1frame as v1
from fp.device import Device
from fp.fcnt import FrameCounter
from fp.journal import Journal
from fp.refusal import LIMIT, Refusals

fails = []


def expect(what, got, want):
    if got != want:
        fails.append(what + ": got " + repr(got) + " want " + repr(want))


def device(key_hex):
    # the v1 frames, which a key signs when they go out (bridges still sign their own so)
    cfg = config.validate({"id": "0123456789abcdef", "key": key_hex, "dr": 5, "activation": "v1"})
    j = Journal("journal")
    return Device(cfg, "config.json", None, j, FrameCounter("fcnt", floor=j.max_fcnt + 1))


old_hex, new_hex = "11" * 16, "22" * 16
dev = device(old_hex)
for _ in range(3):
    dev.queue(rf.PORT_READINGS, b"\x01\x67\x00\xd7")
# a record journaled under another identity (the module got a new id since)
dev.journal.append(rf.unsigned(rf.KIND_UPLINK, b"\xff" * 8, 100, 1, b"\x01\x67\x00\xd7"))
dev.queue(rf.PORT_READINGS, b"\x01\x67\x00\xd8")
frame = dev.next_uplink()
expect("signed with the key of the moment", v1.mic_ok(frame, unhexlify(old_hex)), True)
dev.journal.close()

# "rotate the key": a new config, the same journal; the backlog goes out under the new key
dev = device(new_hex)
seen = []
while True:
    frame = dev.next_uplink()
    if frame is None:
        break
    seen.append(rf.fcnt_of(frame))
    expect(
        f"re-signed {seen[-1]}",
        (v1.mic_ok(frame, unhexlify(new_hex)), v1.mic_ok(frame, unhexlify(old_hex))),
        (True, False),
    )
    dev.journal.done(seen[-1])
expect("backlog in order, the other device's frame given up", seen, [0, 1, 2, 3])
expect("given up counted", dev.journal.refused, 1)

# refusals: LIMIT in a row of one frame give it up; an unknown device never does
for _ in range(3):
    dev.queue(rf.PORT_READINGS, b"\x01\x67\x00\xd7")
head = dev.journal.pending()[0]
logs = []
r = Refusals(dev.journal, lambda lvl, msg: logs.append(msg))
for _ in range(3 * LIMIT):
    expect("unknown device kept", r.refused(head, rf.ACK_UNKNOWN_DEVICE), False)
given = [r.refused(head, rf.ACK_BAD_MIC) for _ in range(LIMIT)]
expect("bad MIC: given up at the limit", given, [False] * (LIMIT - 1) + [True])
expect("gone from the journal", head in dev.journal.pending(), False)
nxt = dev.journal.pending()[0]
r.refused(nxt, rf.ACK_REPLAYED)
r.refused(nxt + 1, rf.ACK_REPLAYED)  # another frame: the count starts again
expect(
    "count is per frame",
    [r.refused(nxt, rf.ACK_REPLAYED) for _ in range(LIMIT)],
    [False] * (LIMIT - 1) + [True],
)
expect("logged", len(logs), 2)
expect("given up counted", dev.journal.refused, 3)

for f in fails:
    print("FAIL", f)
print("OK" if not fails else "FAILED")
