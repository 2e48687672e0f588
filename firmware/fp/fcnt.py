# The uplink frame counter: strictly increasing over the device's life.
# Flash wears out, so the counter is not written per frame: a block of values
# is reserved ahead of use by persisting its upper bound first. After a reboot
# the counter resumes at the stored bound, skipping what the old block did not
# use, so a value is never handed out twice.
#
# The bound is written to two files in turn (<path>.a, <path>.b), each atomically
# (fp/store.py). With both readable the larger is the latest reservation. With
# only one readable (the other damaged, or never written yet) it may be the older
# one, and the newer was at most one block above it: resuming a block further on
# is safe. Only when neither file exists is the device new and starts at 0.
import struct
from fp import store


class CounterError(Exception):
    pass


class FrameCounter:
    def __init__(self, path, block=32, floor=0):
        self.path = path
        self.block = block
        bounds = []
        valid = [None, None]  # bound in .a, .b
        present = 0
        for i in (0, 1):
            p = path + (".a", ".b")[i]
            if store.exists(p) or store.exists(p + ".tmp"):
                present += 1
            body = store.read_atomic(p)
            if body is not None and len(body) == 4:
                valid[i] = struct.unpack(">I", body)[0]
                bounds.append(valid[i])
        # damaged: a file is there but unreadable (reported at boot)
        self.damaged = len(bounds) < present
        if len(bounds) == 2:
            start = max(bounds)
        elif bounds:
            start = bounds[0] + block
        else:
            start = 0
            if present:
                # nothing readable at all: never reuse what the journal shows, and step
                # well past it, since frames the edge has may be gone from the journal
                start = floor + 64 * block
        self.next = start if start > floor else floor
        self.limit = self.next  # nothing reserved yet in this boot
        # the next write replaces the older (or the unreadable) copy
        if valid[0] is None:
            self._turn = 0
        elif valid[1] is None:
            self._turn = 1
        else:
            self._turn = 0 if valid[0] <= valid[1] else 1
        self.writes = 0

    def reserve(self):
        # Persist a new upper bound before any value below it is used.
        limit = self.next + self.block
        if limit > 0xFFFFFFFF:
            raise CounterError("frame counter exhausted")
        store.write_atomic(self.path + (".a", ".b")[self._turn], struct.pack(">I", limit))
        self._turn ^= 1
        self.limit = limit
        self.writes += 1

    def take(self):
        if self.next >= self.limit:
            self.reserve()
        n = self.next
        self.next = n + 1
        return n
