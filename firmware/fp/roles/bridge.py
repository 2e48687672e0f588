# Bridge role: radio receive -> serial UPLINK (RSSI, SNR, receive time); the
# edge's ACK carries the node's downlink, transmitted in the node's receive
# window; periodic STATUS; LOG frames for what it rejects or what goes wrong.
# The bridge has its own identity and journal: its own readings (own_readings)
# and its answers to its own commands go up as UPLINKs with RSSI 0, SNR 0.
import asyncio
import json
import random
import time

from fp import frame as fr
from fp import radio_frame as rf
from fp import v1frame as v1
# the structure of LoRaWAN frames only: a bridge holds no keys and loads no crypto
from fp.lorawan import phy as lw
from fp.airtime import time_on_air_us
from fp.device import FW_VERSION, retry_ms
from fp.link import EV_ACKED, EV_LOST, EV_RECEIVED, EV_REFUSED, EV_STARTED, Link
from fp.linkio import LinkIO
from fp.refusal import Refusals
from micropython import const

_LOG_BURST = const(10)  # LOG frames allowed at once; refilled one per second
_MARGIN_MS = const(50)  # a v1 downlink must end this long before the node's window closes
_V1 = const(0)  # what an uplink was (how its node listens): Fieldpost v1,
_DATA = const(1)  # a LoRaWAN data frame,
_JOIN = const(2)  # a LoRaWAN join request
_JOIN_DELAY1 = const(5)  # JOIN_ACCEPT_DELAY1, s


class Bridge:
    def __init__(self, dev, hal, beat=None, link=None):
        self.dev = dev
        self.hal = hal
        self.cfg = dev.cfg
        self.clock = hal.clock
        self.modem = hal.modem
        self.beat = beat or (lambda name: None)
        hello = {"id": self.cfg["id"], "fw": FW_VERSION, "role": "bridge", "board": hal.name}
        # how the last firmware update ended (edge.fuota.serial): fp/update.py Updater.last_result,
        # read without importing the updater (its names would fill a virtual heltec_v2 bridge's
        # qstr pool at boot); the RAM is the board's
        from fp import store
        here = __file__.rsplit("/", 3)  # <root>/fp/roles/bridge.py: the firmware's root folder
        upd = store.read_atomic((here[0] + "/" if len(here) == 4 else "") + ".update-result")
        if upd:
            hello["upd"] = json.loads(upd)
        self.link = link or Link(hello, time.ticks_ms, accept=(fr.DOWNLINK, fr.UPDATE_OFFER, fr.UPDATE_CHUNK,
                                                               fr.UPDATE_COMMIT))
        self.updates = None  # fp.update_rx.Receiver, loaded with the first update frame
        self.io = LinkIO(hal.uart, self.link, self.on_event, on_error=self._event_error,
                         beat=lambda: self.beat("link"))
        self.tx_lock = asyncio.Lock()
        self.radio_lock = asyncio.Lock()  # the receive loop's, unless a downlink retunes the radio
        self.rx = None  # HELLO_ACK "rx": the windows the edge's join accepts announce
        self.up = ((hal.profile.get("radio") or {}).get("freq_khz", 868100), dev.sf, dev.bw)  # uplinks' channel
        self.c = {"rx": 0, "fwd": 0, "bad": 0, "tx": 0, "late": 0, "no_link": 0, "dl_deferred": 0,
                  "edge_rej": 0, "bad_mic": 0, "sessions": 0, "lost": 0, "refused": 0, "logs_dropped": 0,
                  "errors": 0}
        self.boot_ms = self.clock.ms()
        self.own_inflight = None
        self.own_next_ms = 0  # no own uplink before this (backoff after the edge refused one)
        self.own_refusals = 0  # refusals in a row, for the backoff
        self.refusals = Refusals(dev.journal, dev.log)
        self._log_tokens = _LOG_BURST
        self._log_refill = time.ticks_ms()
        self.fatal = None  # set when a task died: main() reboots

    # --- LOG frames -----------------------------------------------------------

    def log(self, lvl, msg):
        now = time.ticks_ms()
        refill = time.ticks_diff(now, self._log_refill) // 1000
        if refill > 0:
            self._log_tokens = min(_LOG_BURST, self._log_tokens + refill)
            self._log_refill = now
        if not self.link.up or not self.link.can_send() or self._log_tokens <= 0:
            self.c["logs_dropped"] += 1
            return
        self._log_tokens -= 1
        self.io.send(fr.LOG, json.dumps({"lvl": lvl, "msg": msg[:200]}).encode(), ("log",))

    def _event_error(self, e):
        self.c["errors"] += 1
        self.log("error", "event handler: %r" % (e,))

    # --- radio -> edge --------------------------------------------------------

    def on_radio(self, pkt):
        self.c["rx"] += 1
        rx_ms = self.clock.ms()
        try:
            fcnt, mode = _uplink_fcnt(pkt)  # structure only: the bridge holds no node keys
        except ValueError as e:
            self.c["bad"] += 1
            self.log("warn", "radio frame rejected: %s: %s" % (e.args[0], e.args[1]))
            return
        if not self.link.up or not self.link.can_send():
            self.c["no_link"] += 1  # the node keeps it in its journal and retries
            return
        payload = v1.serial_uplink(pkt.rssi, pkt.snr / 4, self.clock.time(), bytes(pkt))
        self.io.send(fr.UPLINK, payload, ("n", rx_ms, fcnt, mode))
        self.c["fwd"] += 1

    async def rx_loop(self):
        while True:
            self.beat("rx")
            async with self.radio_lock:  # held by a downlink on another channel (tx_downlink)
                pkt = await self.modem.recv(timeout_ms=self._beat_ms())
            if pkt is not None and not getattr(pkt, "crc_error", False):
                self.on_radio(pkt)

    def _beat_ms(self):
        return int(getattr(self.hal, "wdt_ms", 4000) // 4 * self.clock.scale) or 1000

    async def tx_downlink(self, dl, rx_ms, kind=_V1):
        # rx_ms: when the uplink ended (= when we heard it). A LoRaWAN node listens in its class
        # A windows (fp/lorawan/phy.py): the downlink starts exactly at RX1 if the edge's
        # answer came early enough for it, else at RX2,
        # never outside a window (too late: dropped). The windows' RxDelay, RX1DROffset and RX2
        # data rate are those the edge's join accepts announce (HELLO_ACK "rx"; a join's own
        # windows: the defaults). A v1 node listens for rx_window: the downlink goes as soon as
        # it is here, if it ends in time.
        clock = self.clock
        cfg = self.cfg
        up = self.up
        params = None
        if kind == _V1:
            toa = (self.modem.get_time_on_air_us(len(dl)) + 999) // 1000  # rounded up: the budget never undercounts
            at = rx_ms + int(cfg["rx_window"] * 1000) - toa - _MARGIN_MS  # the latest start
        else:
            region = cfg["region"]
            e = self.rx
            if kind == _JOIN or not e:
                e = (_JOIN_DELAY1 if kind == _JOIN else 1, 0, None)
            d = lw.rx_timing(e[0] or 1, clock.scale)
            # the earliest start still possible: a margin to retune and load the FIFO
            n = 2 if clock.ms() + d[2] > rx_ms + d[0] else 1
            at = rx_ms + d[n - 1]
            params = lw.window(region, n, up[0], cfg["dr"], None if e[2] is None else (e[1] & 7) << 4 | e[2] & 15)
            toa = (time_on_air_us(len(dl), params[1], params[2]) + 999) // 1000
        async with self.tx_lock:
            now = clock.ms()
            if now > at:
                self.c["late"] += 1
                self.log("warn", "downlink too late for the receive window by %d ms" % (now - at))
                return
            if self.dev.budget.wait_ms(now, toa) != 0:
                self.c["dl_deferred"] += 1
                self.dev.budget.deferred += 1
                return
            self.dev.budget.record(now, toa)
            if params is not None:
                # A LoRaWAN downlink, in RX1 or RX2: sent with inverted IQ, as gateways do, so that
                # only nodes listening in their windows hear it, and no node hears another's uplink.
                # The driver takes a new lora_cfg only while not receiving: the receive loop is
                # held off the radio (radio_lock), which is set for this one transmission and back.
                wait = at - d[2] - clock.ms()
                if wait > 0:  # listening for uplinks until just before
                    await clock.sleep_ms(wait)
                self.modem.standby()  # ends the receive loop's recv; it then waits on radio_lock
                async with self.radio_lock:
                    self.modem.configure({"freq_khz": params[0], "sf": params[1], "bw": str(params[2]),
                                          "invert_iq_tx": True})
                    try:
                        wait = at - clock.ms()
                        if wait > 0:
                            await clock.sleep_ms(wait)
                        await self.modem.send(dl)
                    finally:
                        self.modem.configure({"freq_khz": up[0], "sf": up[1], "bw": str(up[2]),
                                              "invert_iq_tx": False})
            else:  # v1: normal IQ on the uplinks' channel; the driver pauses the receive loop's recv for it
                await self.modem.send(dl)
            self.c["tx"] += 1

    # --- link events ----------------------------------------------------------

    def on_event(self, ev):
        kind = ev[0]
        if kind == EV_ACKED:
            self._on_acked(ev[1], ev[2])
        elif kind == EV_RECEIVED:
            self._own_command(ev[1], ev[2], ev[3])
        elif kind == EV_STARTED:
            self.c["sessions"] += 1
            t = ev[1].get("time")
            if isinstance(t, (int, float)) and t > 0:
                self.clock.set_time(t)  # no RTC: the edge's clock is ours
            rx = ev[1].get("rx")
            if isinstance(rx, list) and len(rx) == 3 and all(isinstance(v, int) for v in rx):
                self.rx = rx
        elif kind == EV_REFUSED:
            self.c["refused"] += 1
            token = ev[1]
            if token and token[0] == "own":
                self.own_inflight = None
        elif kind == EV_LOST:
            self.c["lost"] += 1

    def _on_acked(self, token, result):
        if not token:
            return
        if token[0] == "n":
            try:
                code, dl = v1.parse_ack(result)
            except rf.RadioError:
                self.c["edge_rej"] += 1
                return
            if dl:  # an ACK, a join accept, a "rejoin": the edge built it for the air
                asyncio.create_task(self.tx_downlink(dl, token[1], token[3]))
            if code not in (rf.ACK_STORED, rf.ACK_DUPLICATE):
                self.c["edge_rej"] += 1
                if code == rf.ACK_BAD_MIC:
                    self.c["bad_mic"] += 1
        elif token[0] == "own":
            fcnt = token[1]
            self.own_inflight = None
            try:
                code, dl = v1.parse_ack(result)
            except rf.RadioError:
                return
            if code in (rf.ACK_STORED, rf.ACK_DUPLICATE):
                self.own_refusals = 0
                if not dl or not self.dev.handle_downlink(dl, fcnt):
                    self.dev.journal.done(fcnt)  # stored at the edge either way
            else:
                self.c["edge_rej"] += 1
                if code == rf.ACK_BAD_MIC:
                    self.c["bad_mic"] += 1
                # not at once again: back off as a node does on silence; given up after
                # repeated refusals of the same frame (fp/refusal.py says why). Logged once
                # a streak: the edge has logged each one, the LOG budget is for news.
                self.own_refusals += 1
                if self.own_refusals == 1:
                    self.log("error", "edge refused own uplink %d: result %d" % (fcnt, code))
                self.own_next_ms = self.clock.ms() + retry_ms(self.cfg, self.own_refusals, random.random())
                self.refusals.refused(fcnt, code)

    def _own_command(self, ftype, seq, payload):
        if fr.UPDATE_OFFER <= ftype <= fr.UPDATE_COMMIT:
            self._update_frame(ftype, seq, payload)
            return
        if ftype != fr.DOWNLINK:
            self.link.nack(seq, fr.NACK_UNSUPPORTED, "type")
            return
        try:
            port, command = v1.open_downlink(payload, self.dev.dev_id, self.dev.key, None)
        except rf.RadioError as e:
            if e.args[0] == "mic":
                self.c["bad_mic"] += 1
            self.dev.reject(e.args[0], e.args[1])
            self.link.nack(seq, fr.NACK_INVALID, "%s: %s" % (e.args[0], e.args[1]))
            self.log("warn", "own downlink rejected: %s" % e.args[0])
            return
        if port == rf.DL_PORT_COMMAND:
            self.dev.command(command)  # the answer is journaled and goes up on port 2
        self.link.ack(seq)
        self.io.flush()

    def _update_frame(self, ftype, seq, payload):
        # A firmware update of this bridge (docs/updates.md): once staged, it reboots into it.
        from fp import update_rx
        if self.updates is None:
            self.updates = update_rx.Receiver(self.dev.key, self.hal.name, FW_VERSION)
        if update_rx.on_frame(self.updates, self.link, ftype, seq, payload):
            self.dev.reboot_due = True
        self.io.flush()

    # --- own uplinks, status ----------------------------------------------------

    async def own_loop(self):
        dev = self.dev
        next_sample = self.clock.ms()
        while True:
            self.beat("own")
            now = self.clock.ms()
            if self.cfg["own_readings"] and now >= next_sample:
                dev.take_reading()
                next_sample = now + dev.cfg["interval"] * 1000
            if dev.status_due:
                dev.queue_status(self.uptime_s())
            if dev.reboot_due and not len(dev.journal):
                self.dev.reboot()
            if (len(dev.journal) and self.own_inflight is None and now >= self.own_next_ms
                    and self.link.up and self.link.can_send()):
                frame = dev.next_uplink()  # signed now, with the current key
                if frame is not None:
                    fcnt = rf.fcnt_of(frame)
                    self.own_inflight = fcnt
                    self.io.send(fr.UPLINK, v1.serial_uplink(0, 0, self.clock.time(), frame), ("own", fcnt))
            await asyncio.sleep_ms(50)

    def uptime_s(self):
        return (self.clock.ms() - self.boot_ms) // 1000

    def status(self):
        m = self.modem.counters if hasattr(self.modem, "counters") else {}
        doc = {"heap_free": self.hal.heap_free(), "uptime": self.uptime_s(), "journal": len(self.dev.journal),
               "rx": self.c["rx"], "tx": self.c["tx"], "bad_mic": self.c["bad_mic"],
               "airtime_ms": self.dev.budget.total_ms, "deferred": self.dev.budget.deferred,
               "fwd": self.c["fwd"], "bad": self.c["bad"], "late": self.c["late"],
               "no_link": self.c["no_link"],
               "edge_rej": self.c["edge_rej"], "given_up": self.dev.journal.refused,
               "logs_dropped": self.c["logs_dropped"],
               "radio_lost": m.get("lost", 0), "fw": FW_VERSION}
        if self.dev.safe_reason:
            doc["safe_was"] = self.dev.safe_reason  # back from safe mode (fp/bootguard.py)
        return json.dumps(doc).encode()

    async def status_loop(self):
        while True:
            self.beat("status")
            if self.link.up and self.link.can_send():
                self.io.send(fr.STATUS, self.status(), ("status",))
            await self._sleep_beating("status", int(self.cfg["status_every"] * 1000))

    async def _sleep_beating(self, name, vms):
        end = self.clock.ms() + vms
        while True:
            left = end - self.clock.ms()
            if left <= 0:
                return
            self.beat(name)
            await self.clock.sleep_ms(min(left, self._beat_ms()))

    def tasks(self):
        return (("link", self.io.run), ("rx", self.rx_loop), ("own", self.own_loop),
                ("status", self.status_loop))


def _uplink_fcnt(pkt):
    # (counter, kind) of an uplink as the air carries it: a LoRaWAN join request (0, _JOIN), a
    # data frame (its 16-bit FCnt, _DATA), a Fieldpost v1 frame (its 32-bit fcnt, _V1); or
    # ValueError (reason, text).
    if len(pkt) == lw.JOIN_REQUEST_SIZE and pkt[0] == lw.JOIN_REQUEST:
        return 0, _JOIN
    if pkt[0] in lw.UPLINKS:
        try:
            return lw.fcnt16(pkt), _DATA
        except lw.FrameError:
            if pkt[0] != lw.UNCONFIRMED_UP:  # 0x40 is also the Fieldpost v1 uplink kind
                raise
    return v1.check(pkt, rf.KIND_UPLINK)[1], _V1
