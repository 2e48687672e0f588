# Safe mode after repeated crashes at boot, and its way out. The boot counter
# is raised before anything risky runs and cleared once the firmware has run
# for a while (fp/app.py STABLE_MS); a firmware that keeps dying early (or a
# node whose power is cut again and again right after boot) counts up, and
# past `safe_boots` it boots into safe mode: no role, the link only, so it can
# be reached. Safe mode is never permanent: it holds for SAFE_HOLD_MS, doubled
# at each entry in a row up to SAFE_HOLD_MAX_MS (a node backs off instead of
# crash-looping on its battery), then the counter is reset and the role tries
# again. A run that reaches STABLE_MS clears everything (healed); the reason is
# kept until then so the role can report it once its radio works.
# File "boots" (fp/store: atomic, CRC): boots, safe entries in a row, reason.
import struct

from fp import store

PATH = "boots"
SAFE_HOLD_MS = 60000  # first safe mode: 1 minute
SAFE_HOLD_MAX_MS = 3600000  # never more than an hour between tries


def _read():
    body = store.read_atomic(PATH)
    if not body or len(body) < 4:
        return 0, 0, ""
    if len(body) < 8:  # firmware 0.2.0: the counter alone
        return struct.unpack(">I", body)[0], 0, ""
    n, k = struct.unpack(">II", body[:8])
    return n, k, body[8:].decode()


def _write(n, k, reason):
    store.write_atomic(PATH, struct.pack(">II", n, k) + reason.encode()[:48])


def boots():
    return _read()[0]


def enter():
    n, k, reason = _read()
    _write(n + 1, k, reason)
    return n + 1


def clear():
    # a good run (or an ordered reboot): healed, nothing left to report
    _write(0, 0, "")


def safe_entered(reason):
    # Entering safe mode: returns how long it holds (ms), doubled per entry in a row.
    n, k, _ = _read()
    k += 1
    _write(n, k, reason)
    return min(SAFE_HOLD_MS << min(k - 1, 16), SAFE_HOLD_MAX_MS)


def leave():
    # The hold is over: the role runs again; the entries in a row and the reason stay
    # until a run is stable, so a crash that comes back backs off longer.
    _, k, reason = _read()
    _write(0, k, reason)


def recovered():
    # The reason of the last safe mode if this boot comes after one, else "".
    _, k, reason = _read()
    return reason if k else ""
