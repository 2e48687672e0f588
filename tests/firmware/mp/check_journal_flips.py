# Random bit flips in a journal written by the firmware's own Journal: each flip
# is put in a different FRAME record (chosen at random, adjacent ones included),
# then the journal is opened again. Prints "lost <fcnts>", "flipped <fcnts>",
# "bad <n>", "runs <n>" and "intact <bool>" for the host test to compare.
import os
import random
import sys

from fp import radio_frame as rf
from fp.journal import Journal

seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
flips = int(sys.argv[2]) if len(sys.argv) > 2 else 12
random.seed(seed)
dev = b"\x01\x23\x45\x67\x89\xab\xcd\xef"


def frame(n):
    return rf.unsigned(rf.KIND_UPLINK, dev, n, 1, bytes((1, 0x67, n & 0xFF, 0xA5, 2, 0x68, n % 200)))


N = 120
j = Journal("jf", capacity=N, seg_bytes=1024, max_segments=64)
for n in range(N):
    j.append(frame(n))
j.close()
# where each record lies: (segment file, offset, length, fcnt), from the layout the journal wrote
records = []
for name in sorted(os.listdir("jf")):
    with open("jf/" + name, "rb") as f:
        data = f.read()
    off = 8  # the FORMAT record
    while off < len(data):
        ln = 3 + data[off + 2] + 4
        records.append((name, off, ln, int.from_bytes(data[off + 12 : off + 16], "big")))
        off += ln
chosen = set()
while len(chosen) < flips:
    chosen.add(random.randrange(len(records)))
for k in chosen:
    name, off, ln, fcnt = records[k]
    with open("jf/" + name, "rb") as f:
        data = bytearray(f.read())
    pos = off + random.randrange(ln)
    data[pos] ^= 1 << random.randrange(8)
    with open("jf/" + name, "wb") as f:
        f.write(data)
j = Journal("jf", capacity=N, seg_bytes=1024, max_segments=64)
pending = j.pending()
lost = sorted(set(range(N)) - set(pending))
print("lost", " ".join(str(n) for n in lost))
print("flipped", " ".join(str(n) for n in sorted(records[k][3] for k in chosen)))
# damaged runs: records hit in a row in one segment (a run whose later record has its own
# header hit cannot be split, so it may count as fewer than its records)
runs = sum(1 for k in chosen if k - 1 not in chosen or records[k - 1][0] != records[k][0])
print("bad", j.bad)
print("runs", runs)
print("intact", all(j.read(i) == frame(pending[i]) for i in range(len(pending))))
