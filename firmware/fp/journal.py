# Flash journal of uplinks not yet acknowledged by the edge.
#
# Append-only segment files journal/sNNNNNNNN.j hold records:
#   0xA5, type, len, body[len], crc32(type, len, body) big-endian
# FORMAT (first record of every segment this code writes): body is the format
# version, 2. FRAME: body is the *unsigned* frame, kind, device id, fcnt, port,
# payload (docs/radio.md section 2 without the MIC): the MIC is computed when the
# frame goes out, with the key the module holds then (fp/device.py), so a key
# rotated by provisioning applies to the backlog too; the frame counter is never
# reused, so re-signing a journaled frame never gives one fcnt two meanings.
# The device id stays in the record (9 bytes of flash, no RAM) so that fcnt is
# at the same offset as in the frame, and a record taken under another identity
# is recognised instead of being re-attributed. DONE: body is the fcnt the edge
# acknowledged; DROP: the fcnt dropped because the journal was full (oldest
# first, counted); REFUSED: the fcnt given up after the edge refused it for
# good (counted; see fp/refusal.py).
#
# Format 1 (segments without a FORMAT record, written by firmware 0.1.0) held
# FRAME records already signed. Such a journal is migrated at boot by re-signing,
# not dropping: the MIC is stripped on reading and one compaction rewrites every
# pending frame in format 2 (atomic rename, below). Readings are what the module
# exists for, and re-signing a frame whose fcnt the edge never stored is exactly
# what the edge accepts after a key rotation (it resets its replay floor); a
# frame it did store is answered as a duplicate as long as the key is unchanged.
#
# Every boot appends to a fresh segment, so nothing is ever written after a
# torn tail. A record whose CRC fails is counted and never used, and replay
# resyncs on the next offset that holds a whole valid record (magic, known
# type, length, CRC-32): one bad byte loses at most the record that holds it,
# not every reading after it in the segment. Segments are deleted oldest first once nothing in them
# is pending (a DONE always follows its FRAME, so no acknowledgement is lost
# with them). When there are too many, the pending frames are copied into one
# new segment written under a temporary name and renamed into place (atomic);
# replay tolerates the copy and the originals coexisting after a power cut.
import os
import struct
from array import array
from binascii import crc32

from fp import store
from micropython import const

_MAGIC = const(0xA5)
_T_FRAME = const(1)
_T_DONE = const(2)
_T_DROP = const(3)
_T_FORMAT = const(4)
_T_REFUSED = const(5)
_FORMAT = const(2)
_HEADER = const(14)  # kind, device id, fcnt, port: the shortest unsigned frame
_MIC = const(4)
_COMPACT = "compact.tmp"


def _seg_name(n):
    return "s%08d.j" % n


class Journal:
    def __init__(self, path, capacity=256, seg_bytes=4096, max_segments=8):
        self.path = path
        self.capacity = capacity
        self.seg_bytes = seg_bytes
        self.max_segments = max_segments
        try:
            os.mkdir(path)
        except OSError:
            pass
        store.remove(self._p(_COMPACT))
        # Pending frames, oldest first, as preallocated rings of (fcnt, segment,
        # offset): fixed size, so a full journal never needs a larger block of RAM.
        self._fc = array("I", bytes(4 * capacity))
        self._sg = array("I", bytes(4 * capacity))
        self._of = array("I", bytes(4 * capacity))
        self._h = 0
        self._n = 0
        self.dropped = 0  # DROP records seen plus drops since boot
        self.refused = 0  # REFUSED records seen plus frames given up since boot
        self.bad = 0  # damaged records skipped on replay
        self.migrated = 0  # pending frames rewritten in format 2 at boot, as some were in format 1
        self.max_fcnt = -1  # highest fcnt in any record: the counter resumes above it
        self.segs = []
        self._scan = bytearray(32)  # resync window (see _resync)
        self._hdr = bytearray(3)
        self._rec = bytearray(3 + 255 + 4)  # one record being written (fp: a body is at most 255 bytes)
        self._recv = memoryview(self._rec)
        # (fcnt, body) of the newest frame appended to an empty journal: it is the head, sent
        # next, so it is not read back from flash (a file opened and read, ~700 bytes of garbage
        # on the unix port, per reading cycle). Valid while that fcnt is the head.
        self._head = None
        self._v1 = []  # segments in format 1: their FRAME bodies end in a MIC
        self._alien = []  # segments in a format this code does not know
        for name in os.listdir(path):
            if len(name) == 11 and name[0] == "s" and name.endswith(".j"):
                try:
                    self.segs.append(int(name[1:9]))
                except ValueError:
                    pass
        self.segs.sort()
        from fp import jreplay
        jreplay.replay(self, self.segs)
        del jreplay
        store.unload("fp.jreplay")
        self.cur = (self.segs[-1] + 1) if self.segs else 1
        for s in self._alien:
            self.segs.remove(s)  # never collected nor compacted; numbers above them are used
        self._f = None
        self._size = 0
        self.appends = 0
        for s in self._v1:
            if self._holds(s):
                # Format-1 frames still pending: one compaction rewrites every pending
                # frame in format 2 (read() strips the old MIC). A power cut before its
                # rename leaves the old segments as they were and the next boot migrates
                # again; after it, the copies win on replay.
                self.migrated = self._n
                self.compact()
                break
        self._v1 = []
        self._collect()

    def _p(self, name):
        return self.path + "/" + name

    # --- replay ---------------------------------------------------------------

    def _at(self, i):
        return (self._h + i) % self.capacity

    def _find(self, fcnt):
        for i in range(self._n):
            if self._fc[self._at(i)] == fcnt:
                return i
        return -1

    def _push(self, fcnt, seg, off):
        j = self._at(self._n)
        self._fc[j] = fcnt
        self._sg[j] = seg
        self._of[j] = off
        self._n += 1

    def _forget(self, i):
        if i == 0:  # the usual case: the oldest was acknowledged
            self._h = self._at(1)
        else:
            for k in range(i, self._n - 1):
                a, b = self._at(k), self._at(k + 1)
                self._fc[a] = self._fc[b]
                self._sg[a] = self._sg[b]
                self._of[a] = self._of[b]
        self._n -= 1

    # --- writing --------------------------------------------------------------

    def _record(self, rtype, body):
        # The whole record in the preallocated buffer (a view of it returned): one write per
        # record, so a cut leaves at most this record torn, and no garbage per record.
        n = len(body)
        rec = self._rec
        rec[0] = _MAGIC
        rec[1] = rtype
        rec[2] = n
        rec[3 : 3 + n] = body
        struct.pack_into(">I", rec, 3 + n, crc32(body, crc32(self._recv[1:3])) & 0xFFFFFFFF)
        return self._recv[: 7 + n]

    def _write(self, rtype, body):
        rec = 3 + len(body) + 4
        if self._f is None or self._size + rec > self.seg_bytes:
            self._rotate()
        off = self._size
        self._f.write(self._record(rtype, body))
        self._f.flush()
        self._size += rec
        return off

    def _rotate(self):
        if self._f is not None:
            self._f.close()
            self.cur += 1
        self._f = open(self._p(_seg_name(self.cur)), "wb")
        self._f.write(self._record(_T_FORMAT, bytes((_FORMAT,))))
        self._size = 3 + 1 + 4
        if self.cur not in self.segs:
            self.segs.append(self.cur)

    def append(self, body):
        # Keep an unsigned frame (radio_frame.unsigned) until done(fcnt) or
        # done(fcnt, True). Returns the number of frames dropped to make room.
        dropped = 0
        while self._n >= self.capacity:
            self._write(_T_DROP, struct.pack(">I", self._fc[self._h]))
            self._forget(0)
            self.dropped += 1
            dropped += 1
        fcnt = struct.unpack_from(">I", body, 9)[0]
        off = self._write(_T_FRAME, body)
        self._push(fcnt, self.cur, off)
        if self._n == 1 and type(body) is bytes:  # immutable: the caller cannot change it after
            self._head = (fcnt, body)
        self.max_fcnt = max(self.max_fcnt, fcnt)
        self.appends += 1
        if dropped:
            self._collect()
        return dropped

    def done(self, fcnt, refused=False):
        # Forget a frame: the edge has it, or (refused) will never take it (counted).
        i = self._find(fcnt)
        if i < 0:
            return False
        self._write(_T_REFUSED if refused else _T_DONE, struct.pack(">I", fcnt))
        self._forget(i)
        if refused:
            self.refused += 1
        self._collect()
        return True

    # --- reading --------------------------------------------------------------

    def __len__(self):
        return self._n

    def pending(self):
        return [self._fc[self._at(i)] for i in range(self._n)]

    def read(self, i):
        # The unsigned frame at pending position i (0: oldest), or None if its record went bad.
        j = self._at(i)
        seg = self._sg[j]
        with open(self._p(_seg_name(seg)), "rb") as f:
            f.seek(self._of[j])
            hdr = f.read(3)
            if len(hdr) < 3 or hdr[0] != _MAGIC or hdr[1] != _T_FRAME:
                return None
            rest = f.read(hdr[2] + 4)
        body = rest[:-4]
        if len(rest) < 4 or struct.unpack(">I", rest[-4:])[0] != crc32(body, crc32(hdr[1:3])) & 0xFFFFFFFF:
            return None
        if seg in self._v1:  # format 1: a signed frame; the MIC is made afresh when it is sent
            if len(body) < _HEADER + _MIC:
                return None
            body = body[:-_MIC]
        return body

    def head(self):
        # The oldest pending unsigned frame.
        while self._n:
            h = self._head
            if h is not None and h[0] == self._fc[self._h]:
                return h[1]
            body = self.read(0)
            if body is not None:
                return body
            # unreadable now although it replayed fine: flash went bad; count and skip it
            self.bad += 1
            self._forget(0)
        return None

    # --- space ----------------------------------------------------------------

    def _collect(self):
        # Delete segments from the oldest while nothing pending lives in them.
        while self.segs and self.segs[0] != self.cur:
            s = self.segs[0]
            if self._holds(s):
                break
            store.remove(self._p(_seg_name(s)))
            self.segs.pop(0)
        if len(self.segs) > self.max_segments:
            self.compact()

    def _holds(self, seg):
        for i in range(self._n):
            if self._sg[self._at(i)] == seg:
                return True
        return False

    def compact(self):
        # Every pending frame, in order, into one new format-2 segment made under a
        # temporary name and renamed into place. A frame that cannot be read back any
        # more is counted as bad and left out (never written as an empty record).
        if self._f is not None:
            self._f.close()
            self._f = None
        new = self.cur + 1
        tmp = self._p(_COMPACT)
        kept = 0
        with open(tmp, "wb") as out:
            first = self._record(_T_FORMAT, bytes((_FORMAT,)))
            out.write(first)
            size = len(first)
            for i in range(self._n):
                body = self.read(i)
                if body is None:
                    self.bad += 1
                    continue
                out.write(self._record(_T_FRAME, body))
                # position kept <= i: the ring is rewritten in place as it is read
                a, b = self._at(kept), self._at(i)
                self._fc[a] = self._fc[b]
                self._sg[a] = new
                self._of[a] = size
                size += 3 + len(body) + 4
                kept += 1
            out.flush()
        self._n = kept
        store.replace(tmp, self._p(_seg_name(new)))
        for s in self.segs:
            store.remove(self._p(_seg_name(s)))
        self.segs = [new]
        self._v1 = []
        self.cur = new + 1  # appends go to a fresh segment after the compacted one
        self._f = None

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None
