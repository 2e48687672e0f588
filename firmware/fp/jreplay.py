# Journal replay at boot (fp/journal.py): read every segment, resync past damaged
# records, rebuild the pending rings. Only a boot needs it, so it is a module of its
# own that Journal imports and drops again: a 64K board keeps the RAM for the role.
import os
import struct
from array import array
from binascii import crc32

from fp import store
from fp.journal import _COMPACT, _seg_name
from micropython import const

# the record format of fp/journal.py (its consts are inlined there, not importable)
_MAGIC = const(0xA5)
_T_FRAME = const(1)
_T_DONE = const(2)
_T_DROP = const(3)
_T_FORMAT = const(4)
_T_REFUSED = const(5)
_FORMAT = const(2)
_HEADER = const(14)


def open_journal(j, path, capacity, seg_bytes, max_segments):
    # fp/journal.py Journal(): its state, made and replayed from the segments on flash
    j.path = path
    j.capacity = capacity
    j.seg_bytes = seg_bytes
    j.max_segments = max_segments
    try:
        os.mkdir(path)
    except OSError:
        pass
    store.remove(j._p(_COMPACT))
    # Pending frames, oldest first, as preallocated rings of (fcnt, segment,
    # offset): fixed size, so a full journal never needs a larger block of RAM.
    zeros = bytes(4 * capacity)  # one for the three: each is a piece as big as a ring
    j._fc = array("I", zeros)
    j._sg = array("I", zeros)
    j._of = array("I", zeros)
    del zeros
    j._h = 0
    j._n = 0
    j.dropped = 0  # DROP records seen plus drops since boot
    j.refused = 0  # REFUSED records seen plus frames given up since boot
    j.bad = 0  # damaged records skipped on replay
    j.migrated = 0  # pending frames rewritten in format 2 at boot, as some were in format 1
    j.max_fcnt = -1  # highest fcnt in any record: the counter resumes above it
    j.segs = []
    j._scan = bytearray(32)  # resync window (see _resync)
    j._hdr = bytearray(3)
    j._rec = bytearray(3 + 255 + 4)  # one record being written (fp: a body is at most 255 bytes)
    j._recv = memoryview(j._rec)
    # (fcnt, body) of the newest frame appended to an empty journal: it is the head, sent
    # next, so it is not read back from flash (a file opened and read, ~700 bytes of garbage
    # on the unix port, per reading cycle). Valid while that fcnt is the head.
    j._head = None
    j._v1 = []  # segments in format 1: their FRAME bodies end in a MIC
    j._alien = []  # segments in a format this code does not know
    for name in os.listdir(path):
        if len(name) == 11 and name[0] == "s" and name.endswith(".j"):
            try:
                j.segs.append(int(name[1:9]))
            except ValueError:
                pass
    j.segs.sort()
    replay(j, j.segs)
    j.cur = (j.segs[-1] + 1) if j.segs else 1
    for s in j._alien:
        j.segs.remove(s)  # never collected nor compacted; numbers above them are used
    j._f = None
    j._size = 0
    j.appends = 0
    for s in j._v1:
        if j._holds(s):
            # Format-1 frames still pending: one compaction rewrites every pending
            # frame in format 2 (read() strips the old MIC). A power cut before its
            # rename leaves the old segments as they were and the next boot migrates
            # again; after it, the copies win on replay.
            j.migrated = j._n
            j.compact()
            break
    j._v1 = []
    j._collect()


def replay(j, segs):
    j.max_t = -1  # the newest sample time journaled (fp/radio_frame.py PORT_SAMPLED): app.py
    for s in segs:
        _replay(j, s)
    _sort(j)


def _replay(j, seg):
    try:
        f = open(j._p(_seg_name(seg)), "rb")
    except OSError:
        return
    off = 0
    try:
        while True:
            rec = _valid_at(j, f, off)
            if rec is None:
                break
            if rec is False:
                # Damage: this record is lost (counted once), the ones after it are
                # not. Resync: the next offset where a whole record checks out.
                j.bad += 1
                start = off
                off = _resync(j, f, off + 1)
                if off < 0:
                    break
                j.bad += _damaged_after(j, f, start, off)
                continue
            rtype, body = rec
            if rtype == _T_FORMAT:
                if off != 0 or len(body) != 1 or body[0] != _FORMAT:
                    # misplaced (damage), or a format this code cannot read (a newer
                    # firmware's): not guessed at; the latter is left on flash untouched
                    j.bad += 1
                    if off == 0:
                        j._alien.append(seg)
                        break
            else:
                if off == 0:
                    j._v1.append(seg)  # written before FORMAT records existed
                _apply(j, rtype, body, seg, off)
            off += 3 + len(body) + 4
    finally:
        f.close()

def _valid_at(j, f, off):
    # (type, body) of the record at off; None at the end of the file; False if
    # what is there is not a whole record with a good CRC and a known type.
    f.seek(off)
    hdr = f.read(3)
    if not hdr:
        return None
    if len(hdr) < 3 or hdr[0] != _MAGIC or not _T_FRAME <= hdr[1] <= _T_REFUSED:
        return False
    rest = f.read(hdr[2] + 4)
    if len(rest) < hdr[2] + 4:
        return False
    body = rest[:-4]
    if struct.unpack(">I", rest[-4:])[0] != crc32(body, crc32(hdr[1:3])) & 0xFFFFFFFF:
        return False
    return hdr[1], body

def _damaged_after(j, f, start, end):
    # Further damaged records between a bad one at start and the next good one at
    # end: a chain of headers (magic, known type) whose lengths land exactly on end
    # is that many more records lost, each counted (a record whose own header is
    # damaged too cannot be told apart and stays counted with the span).
    hdr = j._hdr
    for p in range(start + 1, end):
        q = p
        cnt = 0
        while q < end:
            f.seek(q)
            if f.readinto(hdr) < 3 or hdr[0] != _MAGIC or not _T_FRAME <= hdr[1] <= _T_REFUSED:
                break
            q += 3 + hdr[2] + 4
            cnt += 1
        if q == end and cnt:
            return cnt
    return 0

def _resync(j, f, off):
    # The first offset >= off holding a valid record, or -1. Scans for the magic
    # byte in small chunks (no segment-sized buffer: a 64K board), then checks
    # the whole record, so a stray 0xA5 in a payload is passed over (its CRC-32
    # fails but for 1 in 2^32).
    buf = j._scan
    while True:
        f.seek(off)
        n = f.readinto(buf)
        if not n:
            return -1
        for i in range(n):
            if buf[i] == _MAGIC:
                rec = _valid_at(j, f, off + i)
                if rec:
                    return off + i
        off += n

def _apply(j, rtype, body, seg, off):
    if rtype == _T_FRAME:
        if len(body) < _HEADER:
            j.bad += 1
            return
        fcnt = struct.unpack_from(">I", body, 9)[0]
        if body[13] == 255 and len(body) >= _HEADER + 4:  # a reading with its sample time
            j.max_t = max(j.max_t, struct.unpack_from(">I", body, _HEADER)[0])
        i = j._find(fcnt)
        if i >= 0:  # a compacted copy: same frame, newer place
            j._sg[j._at(i)] = seg
            j._of[j._at(i)] = off
        elif j._n < j.capacity:
            j._push(fcnt, seg, off)
        else:  # a smaller capacity than when written: the oldest go
            j._forget(0)
            j.dropped += 1
            j._push(fcnt, seg, off)
    elif rtype in (_T_DONE, _T_DROP, _T_REFUSED) and len(body) == 4:
        fcnt = struct.unpack(">I", body)[0]
        i = j._find(fcnt)
        if i >= 0:
            j._forget(i)
        if rtype == _T_DROP:
            j.dropped += 1
        elif rtype == _T_REFUSED:
            j.refused += 1
    else:
        j.bad += 1
        return
    fcnt = struct.unpack_from(">I", body, 9 if rtype == _T_FRAME else 0)[0]
    j.max_fcnt = max(j.max_fcnt, fcnt)

def _sort(j):
    # A power cut during compaction can leave a copy newer than frames that
    # follow it; resend order is fcnt order. (Replay only: insertion sort in place.)
    for i in range(1, j._n):
        k = i
        while k > 0 and j._fc[j._at(k - 1)] > j._fc[j._at(k)]:
            a, b = j._at(k - 1), j._at(k)
            for r in (j._fc, j._sg, j._of):
                r[a], r[b] = r[b], r[a]
            k -= 1
