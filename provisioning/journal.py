"""Reading a module's flash journal (firmware/fp/journal.py) from the host, to count what is pending.

Since journal format 2 the firmware keeps each frame *unsigned* and computes the MIC when the frame
goes out, with the key the module holds at that moment. So after ``--rotate-key`` the frames still
pending are sent under the new key and the edge (which resets its replay floor on rotation) stores
them; a frame it stored before the rotation whose ACK was lost is answered as a duplicate.
Provisioning counts the pending frames only to tell the operator they will go out under the new key.

The format mirrors the firmware's replay: segment files ``journal/sNNNNNNNN.j`` of records
``0xA5, type, len, body, crc32(type, len, body)``. Record types:

- FORMAT (4): first record of every format-2 segment, body = the format version. A segment of
  another version (a newer firmware's) is not read: the firmware leaves it on flash untouched.
- FRAME (1): the frame without its MIC (format 2; format-1 segments, without a FORMAT record,
  hold signed frames, which the firmware migrates): kind, device id, fcnt (offset 9), port, payload.
- DONE (2), DROP (3), REFUSED (5): body = the fcnt acknowledged by the edge, dropped because the
  journal was full, or given up after the edge refused it for good (firmware/fp/refusal.py).
  None of them is pending any more.
"""

from __future__ import annotations

import struct
import zlib

MAGIC = 0xA5
T_FRAME, T_DONE, T_DROP, T_FORMAT, T_REFUSED = 1, 2, 3, 4, 5
FORMAT_VERSION = 2
FRAME_HEADER = 14  # kind, device id, fcnt, port: the shortest unsigned frame
JOURNAL_DIR = "journal"


def is_segment(name: str) -> bool:
    return len(name) == 11 and name[0] == "s" and name.endswith(".j") and name[1:9].isdigit()


def pending_fcnts(segments: dict[str, bytes]) -> set[int]:
    """Frame counters of journaled frames with no DONE/DROP/REFUSED record, over all segments in order."""
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
            if rtype == T_FORMAT:
                if off != 0 or body != bytes((FORMAT_VERSION,)):
                    break  # misplaced (damage) or another format: the firmware does not read on either
            elif rtype == T_FRAME and size >= FRAME_HEADER:
                pending.add(struct.unpack_from(">I", body, 9)[0])
            elif rtype in (T_DONE, T_DROP, T_REFUSED) and size == 4:
                pending.discard(struct.unpack(">I", body)[0])
            off = end
    return pending
