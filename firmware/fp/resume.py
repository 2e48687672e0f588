# What a deep-sleeping node keeps across the sleep (an ESP32 boots again on waking).
# Journal and frame counter are on flash already; this record holds the rest: the
# clock (virtual ms and wall time), the schedule (next reading, status, retry, the
# retry count), the frame counter's position in its reserved block, the reading
# interval in use, the duty budget's per-minute sums and, where the region counts
# uplinks a day (fp/daycount.py), its per-hour counts. It lives in RTC memory
# (machine.RTC().memory(), kept in deep sleep, lost on a power cut), is written
# whole right before machine.deepsleep() and taken (then erased) only on a
# deep-sleep wake: a record that is torn, from another firmware, or left over
# from before a crash or reset fails the magic/length/CRC check or is never
# looked at, and the node boots as after a power cut (counter from flash, a
# reading at once): nothing is reused, nothing lost.
import struct
from array import array
from binascii import crc32

_MAGIC = b"FPR1"
# clock ms, wall s, next sample, next status, next try, attempts, fcnt next,
# fcnt limit, interval ms, budget minute, budget total ms, budget deferred
_HEAD = ">qIqqqIIIIIII"
_HEAD_LEN = struct.calcsize(_HEAD)


def pack(clock_ms, wall_s, sched, counter, interval_ms, budget):
    sums = budget._air
    body = struct.pack(_HEAD, clock_ms, wall_s, sched[0], sched[1], sched[2], sched[3], counter.next,
                       counter.limit, interval_ms, budget._cur, budget.total_ms, budget.deferred)
    body += bytes(sums)
    if budget.day is not None:
        body += struct.pack(">I", budget.day.cur) + bytes(budget.day.counts)
    return _MAGIC + body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


def unpack(raw, buckets, day_buckets=0):
    # A dict of the record's fields, or None if it is not a whole, valid record.
    day_len = 4 + 2 * day_buckets if day_buckets else 0
    n = len(_MAGIC) + _HEAD_LEN + 4 * buckets + day_len + 4
    if raw is None or len(raw) < n or raw[:4] != _MAGIC:
        return None
    body = raw[4 : n - 4]
    if struct.unpack(">I", raw[n - 4 : n])[0] != crc32(body) & 0xFFFFFFFF:
        return None
    h = struct.unpack(_HEAD, body[:_HEAD_LEN])
    return {"clock_ms": h[0], "wall_s": h[1], "sched": (h[2], h[3], h[4], h[5]), "fcnt": (h[6], h[7]),
            "interval_ms": h[8], "minute": h[9], "total_ms": h[10], "deferred": h[11],
            "sums": array("I", body[_HEAD_LEN : _HEAD_LEN + 4 * buckets]),
            "day": body[_HEAD_LEN + 4 * buckets :]}


def restore(rec, clock, counter, budget, floor):
    # Put the clock, counter and budget back where the sleep found them.
    clock.resume(rec["clock_ms"], rec["wall_s"])
    nxt, limit = rec["fcnt"]
    # The rest of the block reserved before the sleep: flash holds its bound (the counter
    # from flash starts at or above it) and nothing after the record used a value, since
    # the record is written right before machine.deepsleep() and taken only on that wake.
    # Otherwise the counter goes on from flash, as after a power cut: it never goes back.
    if floor <= nxt <= limit <= counter.next and counter.next == counter.limit:
        counter.next = nxt
        counter.limit = limit
    budget._cur = rec["minute"]
    for i in range(len(budget._air)):
        budget._air[i] = rec["sums"][i]
    budget.total_ms = rec["total_ms"]
    budget.deferred = rec["deferred"]
    day = budget.day
    if day is not None:
        raw = rec["day"]
        day.cur = struct.unpack_from(">I", raw)[0]
        counts = array("H", raw[4:])
        for i in range(len(day.counts)):
            day.counts[i] = counts[i]


def attach(hal, node, dev, counter, journal):
    # fp/app.py, for a board that deep-sleeps: it boots again on waking, and what the node keeps
    # across the sleep goes in RTC memory (above). Taken back here after a deep-sleep wake;
    # packed by the HAL right before it sleeps (hal.keep: called with the wake time).
    rec = None
    if hal.resumed:
        day = dev.budget.day
        rec = unpack(hal.resumed, len(dev.budget._air), len(day.counts) if day else 0)
    if rec:
        restore(rec, hal.clock, counter, dev.budget, journal.max_fcnt + 1)
        dev.interval_ms = rec["interval_ms"]
        node.resume = rec["sched"]
        node.boot_ms = hal.clock.ms()  # the clock went on: uptime counts from this boot

    def keep(wake_ms):
        from fp import bootguard
        bootguard.clear()  # an ordered sleep, not a crash: the wake must not count toward safe mode
        return pack(wake_ms, hal.clock._wall0, node.sched, counter, dev.interval_ms, dev.budget)
    hal.keep = keep
