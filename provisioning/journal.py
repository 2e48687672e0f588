"""Reading a module's flash journal (firmware/fp/journal.py) from the host, to count what is pending.

Journal frames are stored signed (same bytes on every resend), so after ``--rotate-key``
the frames still pending carry the old key's MIC and the edge will refuse them.
Provisioning counts them to say so; the format here mirrors the firmware's replay:
segment files ``journal/sNNNNNNNN.j`` of records ``0xA5, type, len, body, crc32``.
"""

from __future__ import annotations

import struct
import zlib

MAGIC = 0xA5
T_FRAME, T_DONE, T_DROP = 1, 2, 3
JOURNAL_DIR = "journal"


def is_segment(name: str) -> bool:
    return len(name) == 11 and name[0] == "s" and name.endswith(".j") and name[1:9].isdigit()


def pending_fcnts(segments: dict[str, bytes]) -> set[int]:
    """Frame counters of journaled frames with no DONE/DROP record, over all segments in order."""
    pending: set[int] = set()
    for name in sorted(n for n in segments if is_segment(n)):
        data, off = segments[name], 0
        while off + 3 <= len(data):
            magic, rtype, size = data[off], data[off + 1], data[off + 2]
            end = off + 3 + size + 4
            if magic != MAGIC or end > len(data):
                break  # a torn or damaged tail: the firmware stops reading the segment here too
            body = data[off + 3 : off + 3 + size]
            (crc,) = struct.unpack_from(">I", data, off + 3 + size)
            if zlib.crc32(body, zlib.crc32(data[off + 1 : off + 3])) != crc:
                break
            if rtype == T_FRAME and size >= 13:
                pending.add(struct.unpack_from(">I", body, 9)[0])
            elif rtype in (T_DONE, T_DROP) and size == 4:
                pending.discard(struct.unpack(">I", body)[0])
            off = end
    return pending
