# Frame counter persistence under micropython, in the cwd. Prints "OK" or FAIL lines.
from fp.fcnt import FrameCounter

fails = []


def expect(what, got, want):
    if got != want:
        fails.append(what + ": got " + repr(got) + " want " + repr(want))


c = FrameCounter("fc", block=4)
expect("fresh starts at 0", [c.take() for _ in range(6)], [0, 1, 2, 3, 4, 5])
expect("written per block, not per frame", c.writes, 2)
# reboot: resume at the reserved bound (6 and 7 were reserved, never used: skipped)
c = FrameCounter("fc", block=4)
expect("resume after reboot", c.take(), 8)
# reboot again, then one copy damaged: resume a block further, never below the truth
c = FrameCounter("fc", block=4)
n = c.take()
expect("third boot", n, 12)
with open("fc.a", "r+b") as f:
    f.write(b"\xff")
c = FrameCounter("fc", block=4)
m = c.take()
expect("one copy damaged: still above everything used", m > n, True)
expect("damage reported", c.damaged, True)
# both damaged: step far past the journal's highest frame
for p in ("fc.a", "fc.b"):
    with open(p, "r+b") as f:
        f.write(b"\x00\x00\x00\x00\x00")
c = FrameCounter("fc", block=4, floor=m + 1)
expect("both damaged: far past the journal", c.take() >= m + 1 + 64 * 4, True)
# the journal floor wins when it is higher (frames journaled above the stored bound)
c = FrameCounter("fc2", block=4, floor=100)
expect("journal floor", c.take(), 100)
for f in fails:
    print("FAIL", f)
print("OK" if not fails else "FAILED")
