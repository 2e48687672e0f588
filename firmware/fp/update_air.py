# A firmware update package received over the air, in a fragment session the node opens
# (nodes; docs/updates.md "Nodes over the air"). Imported only while an update is offered or
# under way (a .update-air record exists): a node without one never loads it (64K heap).
#
#   down FPort 6  offer  0x01 | package SHA-256, first 16 bytes | size u32 BE
#                        [| gap u16 s | burst u16: the energy pace, edge/fuota/energy.py]
#                 stop   0x00 | package id (4 bytes): the edge has no such update (cancelled)
#   up   FPort 7  request  package id (4) | chunk size u8 | first missing chunk u16 |
#                          bitmap u16 (bit i: chunk first+1+i missing too); unconfirmed, not journaled
#   down FPort 7  chunk  index u16 | bytes (chunk size, the last one shorter)
#   up   FPort 6  result, journaled: compact JSON {"r": staged|refused|updated|rolled_back,
#                 "v": the version it runs (staged: the one it goes to), "w": why}
#
# Frames are LoRaWAN frames of the node's session: encrypted with the AppSKey and MIC'd with the
# NwkSKey, so a chunk nobody with the session keys made is dropped before it gets here. The chunk
# size is the node's: what its data rate carries. Received chunks go to .update-air.pkg at their
# offset; .update-air (store.write_atomic: whole or absent) keeps the package id, size, chunk size,
# the energy pace and the bitmap of chunks written, updated after each chunk is on flash, so a
# sleep, a reboot or a restart of the edge costs at most the chunk in flight. The pace keeps the
# requests within the battery allowance the edge sets: `burst` at once, then one every `gap` s,
# kept as one number (GCRA: the theoretical arrival time, `tat`, in s of the node's clock),
# recorded before each request goes, so a sleep or a reboot never hands out more. Complete, the package must hash to its
# id; fp/update.py then stages it at the next boot (per-file SHA-256, board, base) as for a bridge.
import struct

from fp import store
from micropython import const

PORT = const(6)
PORT_FRAG = const(7)
OFFER = const(1)
STOP = const(0)
_OFFER_LEN = const(21)
_PACED_LEN = const(25)  # an offer with the energy pace
_HEAD = ">IBHHI"  # the record after the id: size, chunk, gap, burst, tat
_HEAD_LEN = const(29)  # 16 + struct.calcsize(_HEAD)
_MAX_SIZE = const(1048576)  # a package above 1 MB is not for a node
_WINDOW = const(16)  # chunks a request's bitmap covers after the first missing one


class Refused(Exception):
    # args[0]: why (reported on FPort 6 and logged)
    pass


class AirReceiver:
    def __init__(self, root=None):
        self.root = store.firmware_root() if root is None else root
        self.rec = self.root + ".update-air"
        self.pkg = self.root + ".update-air.pkg"
        self.id = b""  # the package's id (16 bytes of its SHA-256); empty: no transfer
        self.size = self.chunk = 0
        self.gap = self.burst = self.tat = 0  # gap 0: no energy pace
        self.bits = bytearray()
        body = store.read_atomic(self.rec)
        if body and len(body) > _HEAD_LEN:
            self.id = bytes(body[:16])
            self.size, self.chunk, self.gap, self.burst, self.tat = struct.unpack_from(_HEAD, body, 16)
            self.bits = bytearray(body[_HEAD_LEN:])
            if not self.chunk or len(self.bits) != (self.count() + 7) // 8:
                self.forget()  # not a record this code wrote: start over

    def count(self):
        return (self.size + self.chunk - 1) // self.chunk

    def _record(self):
        store.write_atomic(
            self.rec, self.id + struct.pack(_HEAD, self.size, self.chunk, self.gap, self.burst, self.tat) + self.bits
        )

    def have(self, i):
        return self.bits[i >> 3] & (1 << (i & 7))

    def received(self):
        n = 0
        for i in range(self.count()):
            if self.have(i):
                n += 1
        return n

    def offer(self, payload, chunk):
        # An offer (or a stop) from the edge; True when it starts a new transfer. An offer of
        # the package already under way changes nothing (the edge repeats it on each ACK).
        if len(payload) == 5 and payload[0] == STOP:
            if self.id and bytes(payload[1:5]) == self.id[:4]:
                self.forget()
            return False
        if len(payload) not in (_OFFER_LEN, _PACED_LEN) or payload[0] != OFFER:
            raise Refused("offer of %d bytes" % len(payload))
        pid = bytes(payload[1:17])
        size = struct.unpack_from(">I", payload, 17)[0]
        gap = burst = 0
        if len(payload) == _PACED_LEN:
            gap, burst = struct.unpack_from(">HH", payload, 21)
            if not gap or not burst:
                raise Refused("pace of %d s, %d requests" % (gap, burst))
        if not 0 < size <= _MAX_SIZE:
            raise Refused("offer of %d bytes" % size)
        if not 8 <= chunk <= 255:
            raise Refused("chunk of %d bytes" % chunk)
        if pid == self.id and size == self.size:
            if (gap, burst) != (self.gap, self.burst):  # the edge's allowance changed: from now on
                self.gap, self.burst = gap, burst
                self._record()
            return False
        store.remove(self.pkg)
        self.id, self.size, self.chunk = pid, size, chunk
        self.gap, self.burst, self.tat = gap, burst, 0  # a full allowance to start with
        self.bits = bytearray((self.count() + 7) // 8)
        with open(self.pkg, "wb"):
            pass
        self._record()
        return True

    def paced_ms(self, now):
        # 0 when the energy pace lets a request go at `now` (ms, the node's clock), else the ms
        # until it does. GCRA: a request may go while tat - t <= (burst - 1) x gap.
        if not self.gap:
            return 0
        t = now // 1000
        slack = (self.burst - 1) * self.gap
        if self.tat > t + slack + self.gap:
            # ahead of anything a request could have set: the clock started again (a power cut,
            # not a deep sleep, whose clock goes on): count the allowance as spent but one
            self.tat = t + slack
        ahead = self.tat - slack - t
        return ahead * 1000 if ahead > 0 else 0

    def spend(self, now):
        # one request's share of the allowance, on flash before the request goes
        if self.gap:
            self.tat = max(self.tat, now // 1000) + self.gap
            self._record()

    def first_missing(self):
        for i in range(self.count()):
            if not self.have(i):
                return i
        return -1

    def request(self):
        # The payload of the next fragment request (FPort 7); None once every chunk is here.
        first = self.first_missing()
        if first < 0:
            return None
        bitmap = 0
        for k in range(_WINDOW):
            i = first + 1 + k
            if i < self.count() and not self.have(i):
                bitmap |= 1 << k
        return self.id[:4] + struct.pack(">BHH", self.chunk, first, bitmap)

    def put(self, payload):
        # One chunk (FPort 7): written at its offset, then recorded. True when it completes
        # the package. A chunk already here is ignored (its downlink was sent again).
        if not self.id:
            raise Refused("chunk without an offer")
        if len(payload) < 3:
            raise Refused("chunk of %d bytes" % len(payload))
        i = struct.unpack_from(">H", payload)[0]
        n = self.count()
        if i >= n:
            raise Refused("chunk %d of %d" % (i, n))
        want = self.chunk if i < n - 1 else self.size - i * self.chunk
        if len(payload) - 2 != want:
            raise Refused("chunk %d of %d bytes, %d expected" % (i, len(payload) - 2, want))
        if self.have(i):
            return False
        with open(self.pkg, "r+b") as f:
            f.seek(i * self.chunk)
            f.write(memoryview(payload)[2:])
            f.flush()  # on flash before the record says so
        self.bits[i >> 3] |= 1 << (i & 7)
        self._record()
        return self.first_missing() < 0

    def complete(self, board, running):
        # The whole package checked against its id, then handed to fp/update.py, which stages it at
        # the next boot (board, base and every file's SHA-256 checked there, in an empty heap).
        # Refused says why; a damaged package is gone afterwards and the next offer starts over.
        from binascii import hexlify
        from fp.update import Updater, sha256_file
        if sha256_file(self.pkg)[:32] != hexlify(self.id).decode():
            self.forget()
            raise Refused("package hash")
        pkg = self.root + ".update-air.staging"
        store.replace(self.pkg, pkg)
        Updater(self.root, running).received(pkg, board)
        self.forget()

    def forget(self):
        self.id = b""
        self.bits = bytearray()
        store.remove(self.rec)
        store.remove(self.pkg)


# --- the node's side: its downlinks, its requests, its results (fp/device.py, fp/roles/node.py) ---

_FRAG_LEN = const(9)  # a fragment request's payload
_BUCKET_MS = const(60000)  # fp/airtime.py: the budget frees up a minute at a time
_READING_LEN = const(11)  # fp/roles/node.py: the standard reading's payload
_AIR_MARGIN = 1.5  # fp/roles/node.py: a reading's airtime x this, for resends
_LOW_BATTERY_MS = const(3600000)  # under the battery floor: look again an hour later


def battery_low(hal):
    # Under the board profile's battery floor for updates (battery.update_min_v: the chemistry's,
    # so the board's): the node opens no fragment session, and chunks on its readings' ACKs still
    # come. No floor, or no battery measured: never low.
    floor = (hal.profile.get("battery") or {}).get("update_min_v")
    if not floor:
        return False
    v = hal.battery_v()
    return v is not None and v < floor


def on_downlink(dev, port, data):
    # An offer (FPort 6) or a chunk (FPort 7) from a downlink of the node's session (fp/device.py).
    from fp.device import FW_VERSION
    try:
        if port == PORT:
            if dev.reboot_due or store.exists(store.firmware_root() + ".update"):
                return  # staged or on trial already: the edge hears how it ends first
            if dev.budget.day is not None:
                # a Sigfox-class day (140 uplinks) carries readings, not thousands of requests;
                # the edge offers none to such a board (edge/fuota/updates.py): a stray offer waits
                raise Refused("uplinks a day")
            rx = dev.upd or AirReceiver()
            # chunks as large as the data rate carries: the frame less its overhead and index
            if rx.offer(data, min(255, dev.max_payload - dev.overhead - 2)):
                dev.log("info", "update offered: %d bytes" % rx.size)
            dev.upd = rx if rx.id else None
        elif dev.upd is not None and dev.upd.put(data):
            rx, dev.upd = dev.upd, None
            rx.complete(dev.cfg["board"], FW_VERSION)
            report(dev, "staged", FW_VERSION, "")
            dev.reboot_due = True  # staged and swapped at boot, after the result is through
    except Refused as e:
        why = e.args[0]
        dev.log("warn", "update refused: %s" % why)
        if why == "package hash":
            report(dev, "refused", FW_VERSION, why)
        else:
            dev.reject("update", why)


def report(dev, result, version, why):
    dev.queue(PORT, result_payload(result, version, why, dev.max_payload - dev.overhead))


def report_result(dev, path):
    # .update-result (fp/update.py: confirmed, rolled back, refused at boot) on FPort 6, then gone.
    import json
    from fp.device import FW_VERSION
    body = store.read_atomic(path)
    try:
        res = json.loads(body)
        report(dev, res["result"].replace(" ", "_"), FW_VERSION, res.get("why") or "")
    except (ValueError, KeyError, AttributeError, TypeError):
        pass  # unreadable: nothing to report
    store.remove(path)


async def fragment(node, now):
    # One request of the fragment session (fp/roles/node.py, when its journal is empty): the first
    # missing chunk and a bitmap of the next ones; the edge answers with one chunk in the receive
    # window. Returns the ms to wait before the next request. The update keeps its own account of
    # airtime, within the budget less what readings need at the current interval (x margin): a
    # request never takes their room, and the whole stays within the duty cycle.
    dev = node.dev
    rx = dev.upd
    payload = rx.request()
    paced = rx.paced_ms(now)
    if paced:
        return paced  # the battery's allowance for the update: the edge's pace
    if battery_low(dev.hal):
        return _LOW_BATTERY_MS
    toa = (node.modem.get_time_on_air_us(dev.overhead + _FRAG_LEN) + 999) // 1000  # rounded up, as the node's
    budget = dev.budget
    if budget.duty:
        if node.upd_air is None:
            from fp.airtime import DutyBudget
            node.upd_air = DutyBudget(budget.duty)
        reading = node.modem.get_time_on_air_us(dev.overhead + _READING_LEN) // 1000
        reserve = int(reading * _AIR_MARGIN * 3600000 // max(dev.interval_ms, 1))
        if node.upd_air.used_ms(now) + toa > budget.limit_ms - reserve:
            return _BUCKET_MS
    wait = budget.wait_ms(now, toa)
    if wait:
        return max(wait, 0) or _BUCKET_MS
    rx.spend(now)
    frame = dev.lw.fragment_request(dev.counter.take(), payload)
    budget.record(now, toa)
    if node.upd_air is not None:
        node.upd_air.record(now, toa)
    node._t("frag", payload[5] << 8 | payload[6])
    await node.transmit(frame)
    await node.listen(None, answer=True)
    if dev.lw.answered:
        node.attempts = 0
        return 0
    node.attempts += 1
    return node.backoff_ms()


def result_payload(result, version, why, room):
    # The FPort 6 result (result: staged, refused, updated or rolled_back), as compact JSON cut to
    # the room the data rate leaves: the reason loses its end first, spaces as "_".
    import json
    doc = {"r": result, "v": version}
    why = why.replace(" ", "_")
    while True:
        if why:
            doc["w"] = why
        body = json.dumps(doc).replace(" ", "")
        if len(body) <= room or not why:
            return body.encode()
        why = why[:-1]
