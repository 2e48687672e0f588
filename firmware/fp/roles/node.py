# Node role: sample on a schedule, journal, send the oldest unacknowledged
# frame, listen for the downlink in the receive windows (LoRaWAN class A: RX1 and
# RX2, fp/lorawan/phy.py), back off on silence.
# One task; everything time-related goes through hal.clock, so the same loop
# runs in real time on a board, scaled on a virtual module and stepped in the
# simulated-day test.
import random

from fp import radio_frame as rf
from fp.device import retry_ms
from micropython import const

_BEAT_MAX_MS = const(10000)  # sleep in slices no longer than this, so the supervisor sees us alive
# Unanswered uplinks in a row after which a LoRaWAN node joins again: the network may have
# lost its session (a new edge, keys rotated), and only a join can tell. Not sooner: while the
# edge is merely down a join cannot complete, and a bridge short of duty cycle may drop accepts.
_REJOIN_AFTER = const(32)
# Airtime a reading costs, over its frame's own: resends after a lost uplink or ACK
# (10 % loss each way: x1.23) and the status frames; the interval is spaced out to fit.
_AIR_MARGIN = 1.5  # fp/update_air.py reserves the same for readings
_READING_LEN = const(11)  # the standard reading's payload (fp/lpp.py: temperature, humidity, battery)


class Node:
    def __init__(self, dev, hal, beat=None, rand=None, trace=None, beat_ms=_BEAT_MAX_MS):
        self.dev = dev
        self.hal = hal
        self.clock = hal.clock
        self.modem = hal.modem
        self.beat = beat or _noop
        self.rand = rand or random.random
        self.trace = trace  # called with (event, value) for tests and logs
        self.attempts = 0
        self.sent = 0
        self.rx_ok = 0
        self.too_long = 0
        self._deferring = False
        self.boot_ms = self.clock.ms()
        self.resume = None  # (next sample, next status, next try, attempts) after a deep sleep
        self.sched = None
        self.upd_air = None  # airtime of an update's requests (fp/airtime.py DutyBudget), while one runs
        # longest sleep slice in real ms: a quarter of the watchdog (an 8.4 s RP2040 watchdog
        # must see a beat well before it bites)
        self.beat_ms = max(100, min(_BEAT_MAX_MS, beat_ms))

    def _t(self, event, value):
        if self.trace:
            self.trace(event, value)

    def interval_ms(self):
        # The reading interval the airtime law allows (issue 13). A reading that cannot be
        # sent within the duty cycle waits in the journal, never dropped; so that the
        # journal drains instead of filling up until the oldest go, readings are spaced
        # out to what the budget carries: at least the reading frame's airtime x margin /
        # duty, doubled while a backlog of a quarter of the journal waits. Reported: the
        # status's "i" (seconds) and a "backoff" trace when it changes.
        dev = self.dev
        ms = dev.cfg["interval"] * 1000
        duty = dev.budget.duty
        if duty:
            toa = self.modem.get_time_on_air_us(self.dev.overhead + _READING_LEN) // 1000
            ms = max(ms, int(toa * _AIR_MARGIN / duty))
            if dev.budget.day is not None:  # uplinks a day, too (Sigfox-class)
                ms = max(ms, dev.budget.day.reading_ms(self.status_ms()))
            if len(dev.journal) > dev.journal.capacity // 4:
                ms *= 2
        if ms != dev.interval_ms:
            dev.interval_ms = ms
            self._t("backoff", ms // 1000)
        return ms

    def status_ms(self):
        ms = int(self.dev.cfg["status_every"] * 1000)
        return self.dev.budget.day.status_ms(ms) if self.dev.budget.day else ms

    def backoff_ms(self):
        return retry_ms(self.dev.cfg, self.attempts, self.rand())

    def uptime_s(self):
        return (self.clock.ms() - self.boot_ms) // 1000

    async def send_head(self, now):
        # Returns the ms to wait before the next attempt (0: go on at once).
        dev = self.dev
        if dev.lw and not dev.lw.joined:
            from fp.lorawan import otaa  # a LoRaWAN node's, loaded with its session: never a v1 node's
            return await otaa.join(self, now)
        if dev.lw and not dev.lw.announced:
            head = dev.journal.head()
            frame = dev.lw.announcement(rf.fcnt_of(head) if head is not None else dev.counter.next)
            fcnt = None  # nothing of the journal is acknowledged by its ACK
        else:
            frame = dev.next_uplink()  # signed now, with the current key
            if frame is None:
                return -1
            fcnt = dev.head_fcnt
        toa = (self.modem.get_time_on_air_us(len(frame)) + 999) // 1000  # rounded up: the budget never undercounts
        wait = dev.budget.wait_ms(now, toa)
        if wait < 0 or len(frame) > dev.max_payload:
            # can never be sent at this data rate: drop it rather than block the journal
            self.too_long += 1
            dev.journal.done(fcnt)
            self._t("too_long", fcnt)
            return 0
        if wait > 0:
            if not self._deferring:
                self._deferring = True
                dev.budget.deferred += 1
                self._t("deferred", fcnt)
            return wait
        self._deferring = False
        dev.budget.record(now, toa)
        if fcnt is not None:
            self._t("tx", (fcnt, now, toa))
        await self.transmit(frame)
        acked = await self.listen(fcnt)
        if acked:
            self.attempts = 0
            self.rx_ok += 1
            if fcnt is None:
                dev.lw.set_announced()
                self._t("announced", dev.lw.base + 1)
            else:
                self._t("acked", fcnt)
            return 0
        self.attempts += 1
        if dev.lw and not dev.lw.abp and (self.attempts % _REJOIN_AFTER == 0 or not dev.lw.joined):
            dev.lw.forget()  # asked to by the edge (not joined any more), or no answer for long
            self._t("rejoin", self.attempts)
            return 0 if self.attempts % _REJOIN_AFTER else self.backoff_ms()
        return self.backoff_ms()

    async def listen(self, fcnt, answer=False):
        # The downlink answering the uplink just sent: True when it acknowledged uplink `fcnt`
        # (answer: once any downlink of our session came, for a fragment request). LoRaWAN: the
        # class A windows RX1 and RX2 (fp/lorawan/otaa.py, which a v1 node never loads). v1:
        # one window of rx_window seconds from the end of the uplink, on its channel.
        if self.dev.lw is not None:
            from fp.lorawan import otaa
            return await otaa.listen(self, fcnt, answer)
        end = self.clock.ms() + int(self.dev.cfg["rx_window"] * 1000)
        self._radio("rx")
        try:
            while True:
                left = end - self.clock.ms()
                if left <= 0:
                    return False
                pkt = await self.modem.recv(timeout_ms=left)
                if pkt is None:
                    return False
                if self.dev.handle_downlink(pkt, fcnt):
                    return True
        finally:
            self.modem.sleep()
            self._radio("sleep")

    async def transmit(self, frame):
        # A frame on the air (a reading, a join request, an update's fragment request): the
        # status LED lit while the radio transmits, the radio's state told to the power model,
        # and counted
        self.hal.led(True)
        self._radio("tx")
        try:
            await self.modem.send(frame)
        finally:
            self.hal.led(False)
            self._radio("standby")
        self.sent += 1

    def _radio(self, state):
        # the power model of a virtual board (fp/power.py); boards have none
        power = getattr(self.hal, "power", None)
        if power is not None:
            power.radio(state)

    async def run(self, until_ms=None):
        dev = self.dev
        clock = self.clock
        next_sample = clock.ms()
        next_try = next_sample
        next_status = next_sample  # a status right after boot tells the edge we restarted
        if self.resume:  # woken from a deep sleep (fp/resume.py): the schedule goes on
            next_sample, next_status, next_try, self.attempts = self.resume
        while until_ms is None or clock.ms() < until_ms:
            self.beat()
            now = clock.ms()
            if now >= next_sample:
                fcnt = dev.take_reading()
                self._t("taken", fcnt)
                if self.trace:  # when, on the node's clock: what its age is measured from
                    self.trace("sampled", (fcnt, now))
                interval = self.interval_ms()
                next_sample += interval
                if next_sample <= now:  # fell behind (a long stall): skip, do not burst
                    next_sample = now + interval
            if dev.status_due or now >= next_status:
                fcnt = dev.queue_status(self.uptime_s())
                self._t("status", fcnt)
                next_status = now + self.status_ms()
            if dev.reboot_due and (not len(dev.journal) or self.attempts >= 3):
                # after our own port-2 answer is through, or after 3 tries (it is
                # journaled and goes out after the reboot)
                self._t("reboot", 0)
                self.dev.reboot()
            if len(dev.journal) and now >= next_try:
                wait = await self.send_head(now)
                next_try = clock.ms() + (max(0, wait))
                if wait == 0:
                    continue
            elif dev.upd is not None and not dev.reboot_due and now >= next_try:
                # an update under way, readings all through: its next fragment request
                from fp import update_air  # loaded while an update is under way only
                wait = await update_air.fragment(self, now)
                next_try = clock.ms() + wait
                if wait == 0:
                    continue
            wake = min(next_sample, next_status)
            if (len(dev.journal) or dev.upd is not None) and next_try < wake:
                wake = next_try
            # The HAL decides how to sleep (deep, light, or awake); the role says until when.
            self.sched = (next_sample, next_status, next_try, self.attempts)  # kept if it deep-sleeps
            # slices of a quarter of the watchdog in real time; a stepped clock (scale 0) has no
            # real time to watch: one step
            await self.hal.sleep_until(wake, self.beat, self.beat_ms * self.clock.scale)


def _noop():
    pass
