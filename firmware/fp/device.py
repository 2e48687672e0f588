# What a node and a bridge with its own sensors share: identity, frame counter,
# journal, building uplinks, and acting on the downlinks addressed to it.
import json
import struct
from binascii import unhexlify

from fp import store
from fp import radio_frame as rf
from fp.airtime import DutyBudget
from micropython import const

FW_VERSION = "0.4.0"
DLIDS = "dlids"  # last executed downlink ids, so a resent reboot does not reboot twice (fp/downlink.py)
_SAMPLED = const(255)  # fp/radio_frame.py _PORT_SAMPLED: a reading journaled with its sample time


class Device:
    def __init__(self, cfg, cfg_path, hal, journal, counter, log=None):
        self.cfg = cfg
        self.cfg_path = cfg_path
        self.hal = hal
        self.journal = journal
        self.counter = counter
        self.log = log or _no_log
        self.dev_id = unhexlify(cfg["id"])
        self.key = unhexlify(cfg["key"])
        # A node's radio speaks LoRaWAN (fp/lorawan/); a bridge's own frames never go on the air.
        self.lw = None
        self.overhead = rf.OVERHEAD
        if cfg["role"] == "node" and cfg["activation"] != "v1":
            import gc
            gc.collect()  # room to load the LoRaWAN code in one piece on a 64K board
            from fp.lorawan.frames import OVERHEAD
            from fp.lorawan.otaa import LoRaWAN
            self.lw = LoRaWAN(cfg)
            self.overhead = OVERHEAD
        self.head_fcnt = None  # local counter of the frame next_uplink returned
        from fp.region import UPLINKS_PER_DAY, region_params
        duty, self.sf, self.bw, self.max_payload = region_params(cfg["region"], cfg["dr"])
        per_day = UPLINKS_PER_DAY.get(cfg["region"])
        store.unload("fp.region")  # what this module needs of the table is kept: the rest goes
        if cfg["duty_cycle"] >= 0:
            duty = cfg["duty_cycle"]
        self.budget = DutyBudget(duty)
        if per_day and cfg["role"] == "node":  # uplinks a day, too (Sigfox-class)
            from fp.daycount import DayCount
            self.budget.day = DayCount(per_day)
        self.stats = {"taken": 0, "acked": 0, "dropped": 0, "rejects": 0, "bad_mic": 0, "results": 0}
        self.last_reject = ""
        self.status_due = False
        self.reboot_due = False
        self.interval_ms = cfg["interval"] * 1000  # as the node spaces readings (fp/roles/node.py)
        self.safe_reason = ""  # why the last safe mode was (fp/bootguard.py), until a status said it
        body = store.read_atomic(DLIDS)
        self.dl_ids = list(struct.unpack(">4H", body)) if body and len(body) == 8 else []
        # A firmware update coming over the air (fp/update_air.py): loaded only while one is under way
        self.upd = None
        if self.lw and store.exists(store.firmware_root() + ".update-air"):
            from fp.update_air import AirReceiver
            self.upd = AirReceiver()
            if not self.upd.id:
                self.upd = None

    # --- uplinks --------------------------------------------------------------

    def queue(self, port, payload, t=-1):
        # Number, sign and journal one uplink; returns its fcnt. The counter is
        # reserved on flash before use and the frame is durable before it is sent.
        # t >= 0: a reading sampled then (0.1 s on the clock), journaled with that time
        # (port _SAMPLED) so it goes out with its age, however long it waits.
        room = self.max_payload - self.overhead
        if len(payload) > room:
            payload = payload[:room] if port != rf.PORT_READINGS else payload
            if len(payload) > room:
                raise rf.RadioError("long", "%d-byte payload, %d allowed at this data rate"
                                    % (len(payload), room))
        if t >= 0:
            port = _SAMPLED
            payload = struct.pack(">I", t) + payload
        fcnt = self.counter.take()
        # Journaled unsigned: the MIC is made when it goes out (next_uplink).
        dropped = self.journal.append(rf.unsigned(rf.KIND_UPLINK, self.dev_id, fcnt, port, payload))
        if dropped:
            self.stats["dropped"] += dropped
        return fcnt

    def next_uplink(self):
        # The oldest journaled uplink as it goes on the air: signed now, with the key
        # the module holds now, so a backlog journaled before a key rotation goes out
        # under the new key (the edge resets its replay floor when it rotates; fcnt
        # values are never reused, so the edge cannot mistake one for another).
        # None when the journal is empty.
        while True:
            body = self.journal.head()
            if body is None:
                return None
            if body[1:9] == self.dev_id:
                self.head_fcnt = rf.fcnt_of(body)
                if body[13] == _SAMPLED:
                    # A reading sent over half a second after it was sampled carries its age
                    # (port 8, docs/radio.md 0.9): tenths of a second on the clock, rounded to
                    # seconds; a fresh one goes as plain port-1 LPP, as any LoRaWAN server reads
                    # it, and so does one with no room for 3 more bytes (a 12-byte profile).
                    age = (self.hal.clock.ms() // 100 - struct.unpack_from(">I", body, 14)[0] + 5) // 10
                    if len(body) - 1 - rf.HEADER > self.max_payload - self.overhead:
                        age = 0
                    body = rf.aged(body, age)
                if self.lw:
                    return self.lw.uplink(body)
                from fp.v1frame import sign  # a v1 node's (loaded with its first uplink)
                return sign(body, self.key)
            # Taken under another device id (the module was re-provisioned with a new
            # identity): signing it as ours would give that reading to this device.
            # Given up, counted with the refused ones, never sent.
            self.journal.done(rf.fcnt_of(body), True)

    def take_reading(self):
        from fp import lpp  # a node's (and a bridge's with own_readings): a bridge without never loads it
        temp, rh = self.hal.read_climate()
        t = self.hal.clock.ms() // 100  # sampled now: kept with the frame, sent as its age
        fcnt = self.queue(rf.PORT_READINGS, lpp.standard_reading(temp, rh, self.hal.battery_v()), t)
        self.stats["taken"] += 1
        return fcnt

    def status(self, uptime_s):
        # Port 3: compact JSON cut to what the data rate carries (51 bytes at SF12 leave 33).
        bat = self.hal.battery_v()
        items = [("j", len(self.journal)), ("u", uptime_s), ("a", self.budget.total_ms // 1000),
                 ("d", self.budget.deferred), ("r", self.stats["rejects"]), ("m", self.stats["bad_mic"]),
                 ("x", self.stats["dropped"]), ("f", self.journal.refused), ("w", self.last_reject[:12])]
        if bat is not None:
            items.insert(0, ("b", round(bat, 2)))
        power = getattr(self.hal, "power", None)
        if power is not None:  # a virtual board's power model: mAh a day and the cell it drains
            items.insert(0, ("c", self.hal.battery_mah))
            items.insert(0, ("e", round(power.mah_per_day(), 3)))
        if self.interval_ms != self.cfg["interval"] * 1000:  # backed off for the duty cycle
            items.insert(1, ("i", self.interval_ms // 1000))
        if self.safe_reason:  # first, so it is never the item cut for room
            items.insert(0, ("s", self.safe_reason.replace(" ", "_")[:20]))  # the JSON goes without spaces
        room = self.max_payload - self.overhead
        doc = {}
        for k, v in items:
            doc[k] = v
            if len(json.dumps(doc)) > room:
                del doc[k]
        return json.dumps(doc).replace(" ", "").encode()

    def queue_status(self, uptime_s):
        self.status_due = False
        fcnt = self.queue(rf.PORT_STATUS, self.status(uptime_s))
        self.safe_reason = ""  # journaled: it goes out, resent until acknowledged
        return fcnt

    def reboot(self):
        # An ordered reboot is not a crash: it must not count toward safe mode.
        from fp import bootguard
        bootguard.clear()
        self.journal.close()
        self.hal.reset()

    # --- downlinks ------------------------------------------------------------

    def reject(self, reason, text):
        self.stats["rejects"] += 1
        if reason == "mic":
            self.stats["bad_mic"] += 1
        self.last_reject = reason
        self.log("warn", "rejected downlink: %s (%s)" % (reason, text))

    def handle_downlink(self, frame, fcnt):
        # A downlink received in answer to uplink fcnt. True when it acknowledged it.
        if self.lw:
            return self.lw.downlink(self, frame, fcnt)
        try:
            from fp.v1frame import open_downlink
            port, command = open_downlink(frame, self.dev_id, self.key, fcnt)
        except rf.RadioError as e:
            if e.args[0] != "device":  # another node's downlink is not an error of ours
                self.reject(e.args[0], e.args[1] if len(e.args) > 1 else "")
                self.status_due = True
            return False
        if fcnt is not None and self.journal.done(fcnt):
            self.stats["acked"] += 1
        if port == rf.DL_PORT_COMMAND:
            self.command(command)
        return True

    def command(self, payload):
        # Validate, act, answer on port 2 (fp/downlink.py run: imported here, not at the top:
        # commands are rare and a 64K board needs the RAM; dropped again once done).
        from fp import downlink
        try:
            downlink.run(self, payload)
        finally:
            del downlink
            store.unload("fp.downlink")
            store.unload("fp.config")  # fp/downlink.py's validator
            store.unload("fp.region")  # and the table it checks a region against

    # --- firmware updates over the air (nodes; fp/update_air.py, loaded only when needed) ----

    def report_update(self):
        # How the last update ended (fp/update.py writes it: confirmed, rolled back, refused at
        # boot), said once on FPort 6 and journaled, so the edge hears it even across a reboot.
        path = store.firmware_root() + ".update-result"
        if store.exists(path):
            from fp import update_air
            update_air.report_result(self, path)


def retry_ms(cfg, attempts, r):
    # Exponential backoff with jitter: retry_base doubling per failed attempt up to
    # retry_max, times r in [0.5, 1.5) (r: a random number in [0, 1)).
    step = cfg["retry_base"] * (1 << min(attempts - 1, 16))
    step = min(step, cfg["retry_max"])
    return int(step * 1000 * (0.5 + r))


def _no_log(lvl, msg):
    pass
