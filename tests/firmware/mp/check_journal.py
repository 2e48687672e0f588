# Journal semantics under micropython, in the cwd. Prints "OK" or "FAIL <what>" lines.
import os
import struct
from binascii import crc32

from fp import radio_frame as rf
from fp import v1frame as v1
import v1build
from fp.journal import Journal

dev = b"\x01\x23\x45\x67\x89\xab\xcd\xef"
key = bytes(range(1, 17))
fails = []


def frame(n):
    # what the device journals: the frame without its MIC (signed when sent)
    return rf.unsigned(rf.KIND_UPLINK, dev, n, 1, b"\x01\x67\x00\xd7")


def expect(what, got, want):
    if got != want:
        fails.append(f"{what}: got {got!r} want {want!r}")


# bounded: the oldest are dropped and counted, order kept across a "reboot"
j = Journal("j1", capacity=5, seg_bytes=256, max_segments=3)
for n in range(8):
    j.append(frame(n))
expect("pending after overflow", j.pending(), [3, 4, 5, 6, 7])
expect("dropped", j.dropped, 3)
j.done(3)
j.close()
j = Journal("j1", capacity=5, seg_bytes=256, max_segments=3)
expect("pending after reboot", j.pending(), [4, 5, 6, 7])
expect("dropped after reboot", j.dropped, 3)
expect("head is oldest", j.head(), frame(4))

# many small segments compact into one, atomically, keeping what is pending
for n in range(8, 40):
    j.append(frame(n))
    j.done(j.pending()[0])
expect("segments bounded", len(os.listdir("j1")) <= 3 + 1, True)
j.close()
j = Journal("j1", capacity=5, seg_bytes=256, max_segments=3)
expect("pending after compactions", j.pending(), [36, 37, 38, 39])

# a damaged record is refused with everything after it in its segment; others survive
j2 = Journal("j2", capacity=50)
for n in range(5):
    j2.append(frame(n))
j2.close()
seg = "j2/" + sorted(os.listdir("j2"))[0]
with open(seg, "rb") as f:
    data = bytearray(f.read())
rec = len(data) // 5
data[2 * rec + 20] ^= 0xFF  # inside the third record's frame
with open(seg, "wb") as f:
    f.write(data)
j2 = Journal("j2", capacity=50)
expect("only the damaged record lost (resync)", j2.pending(), [0, 1, 3, 4])
expect("damage counted", j2.bad, 1)
for i, n in enumerate((0, 1, 3, 4)):
    expect("surviving record intact", j2.read(i), frame(n))
j2.append(frame(10))
j2.close()
expect("appends go to a fresh segment after damage", Journal("j2").pending(), [0, 1, 3, 4, 10])


def record(rtype, body):
    hdr = bytes((0xA5, rtype, len(body)))
    return hdr + body + struct.pack(">I", crc32(body, crc32(hdr[1:3])) & 0xFFFFFFFF)


def first_record_type(path):
    with open(path, "rb") as f:
        return f.read(2)[1]


# every segment this code writes starts with a FORMAT record (type 4, version 2)
expect(
    "segments carry their format",
    [first_record_type("j2/" + n) for n in sorted(os.listdir("j2"))],
    [4] * len(os.listdir("j2")),
)

# given up (refused for good): forgotten, counted apart from the drops, across a reboot
j3 = Journal("j3", capacity=10)
for n in range(4):
    j3.append(frame(n))
expect("refused frame forgotten", j3.done(1, True), True)
expect("unknown fcnt", j3.done(99, True), False)
j3.close()
j3 = Journal("j3", capacity=10)
expect("pending after refusal and reboot", j3.pending(), [0, 2, 3])
expect("refused counted", (j3.refused, j3.dropped), (1, 0))

# format 1 (firmware 0.1.0: no FORMAT record, frames stored signed with the key of the day):
# migrated at boot by re-signing, not dropping. The old MIC is stripped, every pending frame
# is rewritten in format 2 by one compaction (atomic rename), acknowledged ones stay gone.
old_key = bytes(range(100, 116))
new_key = bytes(range(50, 66))
os.mkdir("j4")
with open("j4/s00000003.j", "wb") as f:
    for n in (5, 6, 7, 8):
        f.write(record(1, v1build.build_uplink(dev, old_key, n, 1, bytes((1, 0x67, 0, n)))))
    f.write(record(2, struct.pack(">I", 6)))  # DONE 6
with open("j4/s00000004.j", "wb") as f:
    f.write(record(1, v1build.build_uplink(dev, old_key, 9, 3, b'{"j":3}')))
    f.write(record(3, struct.pack(">I", 5)))  # DROP 5
    f.write(bytes((0xA5, 1, 29, 0x40)))  # and a torn tail, as a power cut leaves
j4 = Journal("j4")
expect("format 1 pending kept", j4.pending(), [7, 8, 9])
expect("format 1 migrated", (j4.migrated, j4.dropped, j4.bad), (3, 1, 1))
expect(
    "format 1 unsigned on reading", j4.head(), rf.unsigned(rf.KIND_UPLINK, dev, 7, 1, bytes((1, 0x67, 0, 7)))
)
expect("format 1 read as format 2", j4.read(2), rf.unsigned(rf.KIND_UPLINK, dev, 9, 3, b'{"j":3}'))
expect("one format-2 segment left", [first_record_type("j4/" + n) for n in os.listdir("j4")], [4])
signed = v1.sign(j4.head(), new_key)
expect(
    "re-signed with the key of today", (v1.mic_ok(signed, new_key), v1.mic_ok(signed, old_key)), (True, False)
)
j4.append(frame(10))
j4.close()
j4 = Journal("j4")
expect("after migration, a reboot is plain format 2", (j4.pending(), j4.migrated), ([7, 8, 9, 10], 0))

# a power cut during the migration, after the rename, before the old segments went: the
# copies win, nothing is pending twice, nothing migrated again
os.mkdir("j5")
with open("j5/s00000001.j", "wb") as f:
    for n in (1, 2):
        f.write(record(1, v1build.build_uplink(dev, old_key, n, 1, b"\x01\x67\x00\x01")))
with open("j5/s00000002.j", "wb") as f:
    f.write(record(4, b"\x02"))
    for n in (1, 2):
        f.write(record(1, rf.unsigned(rf.KIND_UPLINK, dev, n, 1, b"\x01\x67\x00\x01")))
j5 = Journal("j5")
expect(
    "interrupted migration: copies win",
    (j5.pending(), j5.migrated, j5.head()),
    ([1, 2], 0, rf.unsigned(rf.KIND_UPLINK, dev, 1, 1, b"\x01\x67\x00\x01")),
)
expect("interrupted migration: old segment collected", sorted(os.listdir("j5")), ["s00000002.j"])

# a segment of a format this code does not know (a newer firmware's) is not guessed at:
# counted, not used, and left on flash (a downgrade must not destroy what it cannot read)
os.mkdir("j6")
with open("j6/s00000001.j", "wb") as f:
    f.write(record(4, b"\x03"))
    f.write(record(1, frame(1)))
j6 = Journal("j6", max_segments=1)
expect("unknown format refused", (j6.pending(), j6.bad), ([], 1))
for n in range(2, 6):
    j6.append(frame(n))
    j6.done(n)
j6.compact()
expect("unknown format left alone", "s00000001.j" in os.listdir("j6"), True)

for f in fails:
    print("FAIL", f)
print("OK" if not fails else "FAILED")
