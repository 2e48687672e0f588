# Safe mode after repeated crashes at boot. The boot counter is raised before
# anything risky runs and cleared once the firmware has run for a while; a
# firmware that keeps dying early therefore counts up, and at `limit` it boots
# into safe mode (link and LOG only, no role) so it can be reached and fixed.
import struct

from fp import store

PATH = "boots"


def boots():
    body = store.read_atomic(PATH)
    return struct.unpack(">I", body)[0] if body and len(body) == 4 else 0


def enter():
    n = boots() + 1
    store.write_atomic(PATH, struct.pack(">I", n))
    return n


def clear():
    store.write_atomic(PATH, struct.pack(">I", 0))
