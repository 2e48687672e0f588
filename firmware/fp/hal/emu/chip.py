# What the emulated SX1276 and SX1262 (unix port only) have in common: chip
# time, timers, the packets on the loopback air (fp/hal/airwire.py), the log
# of invalid use, the time spent in each state, and the asyncio tasks that let
# the chip raise its DIO lines while the host waits.
#
# Time: the chip runs on the virtual module's clock. Its durations (time on
# air, RX timeouts, BUSY periods) are chip time; with config "time_scale" S
# they pass S times faster in real time, like everything else on the module.
# Timers are kept in real microseconds (time.ticks_us); state times are
# reported in chip milliseconds, what a power model multiplies by currents.
#
# Reception: a packet's datagram arrives when its transmission starts and
# says how long it lasts. A receiver in RX mode locks on it when the packet is
# compatible (airwire.compatible), not lost (config "loss"), above the
# sensitivity, and the receiver was listening by the time its preamble was
# still long enough to detect (all but 4 symbols: RX entered up to
# preamble-4 symbols late still catches it). RxDone comes when the packet
# ends. A second compatible packet during a reception collides: the first is
# received with a CRC error. A packet that starts while the chip is not
# listening is missed, as on the air (half duplex).
#
# Host slack: at time_scale S > 1 the chip runs S times faster but the host
# (this interpreter) does not: switching from TX to RX takes it a millisecond
# or more of real time, S times that in chip time. So a scaled chip that enters
# RX up to HOST_SLACK real ms after a packet started still catches it (its
# RxDone then comes at the packet's end, or at once). At time_scale 1 the
# timing is the datasheet's alone.
import asyncio
import sys
from time import ticks_add, ticks_diff, ticks_us

from fp.hal import airwire
from micropython import const

_LOG_MAX = const(40)  # invalid-use messages kept (all are counted)
_PRINT_MAX = const(20)  # distinct messages printed on stderr
_FLIGHT_MAX = const(8)
_DETECT_SYMS = const(4)  # preamble symbols a receiver needs to lock on
_HOST_SLACK_US = const(10000)


def symbols_x4(pl, sf, cr, preamble, explicit, crc, ldro, sx126x):
    # Symbols of a LoRa packet, times 4 (the preamble adds a quarter symbol).
    # SX1276 DS 4.1.1.7 and SX1261/2 DS 6.1.4 (which adds 2 symbols and drops
    # the 8-bit term at SF5/SF6 on SX126x). cr: denominator 5..8.
    if sx126x and sf < 7:
        bits = 8 * pl + (16 if crc else 0) - 4 * sf + (20 if explicit else 0)
        pre_x4 = (preamble + 6) * 4 + 1
        den = 4 * sf
    else:
        bits = 8 * pl + (16 if crc else 0) - 4 * sf + 8 + (20 if explicit else 0)
        pre_x4 = (preamble + 4) * 4 + 1
        den = 4 * (sf - (2 if ldro else 0))
    blocks = (bits + den - 1) // den if bits > 0 else 0
    return pre_x4 + 4 * (8 + blocks * cr)


def toa_us(nsym_x4, sf, bw_hz):
    return nsym_x4 * (1 << sf) * 1000000 // (4 * bw_hz)


class Packet:
    # One transmission on the air as this receiver hears it.
    def __init__(self, hdr, payload, t0, t1):
        self.hdr = hdr  # airwire header tuple
        self.payload = payload
        self.t0 = t0  # real us: start of the transmission
        self.t1 = t1  # real us: its end
        self.rssi = 0
        self.snr = 0.0
        self.corrupt = False
        self.locked = False


class Chip:
    def __init__(self, name, air, scale=1, trace=None):
        self.name = name
        self.air = air
        self.scale = scale if scale and scale > 0 else 1
        self.slack_us = _HOST_SLACK_US if self.scale > 1 else 0
        self.counters = air.counters
        self.counters["crc_err"] = 0
        self.invalid = 0
        self.notes = 0
        self.log = []
        self._printed = []
        self.trace = trace  # a list: (mosi, miso) of every SPI transaction, for tests
        self.transactions = 0  # SPI transactions (NSS low periods) so far
        self.state = "off"
        self._t_state = ticks_us()
        self.state_us = {}
        self.tx_power = []  # dBm of the last transmissions (power model)
        self.last_toa_us = 0  # chip time on air of the last transmission, from the registers
        self._timers = {}
        self._flight = []
        self.rx_pkt = None
        self._rx_since = None
        self._kick = asyncio.Event()
        self._tasks = []
        self.closed = False

    # --- time ---------------------------------------------------------------------

    def real_us(self, chip_us):
        return int(chip_us / self.scale)

    def at(self, name, chip_us):
        self._timers[name] = ticks_add(ticks_us(), self.real_us(chip_us))
        self._kick.set()

    def at_real(self, name, when):
        self._timers[name] = when
        self._kick.set()

    def cancel(self, name):
        self._timers.pop(name, None)

    def pending(self, name):
        return name in self._timers

    def set_state(self, state):
        now = ticks_us()
        if self.state != "off":
            self.state_us[self.state] = self.state_us.get(self.state, 0) + ticks_diff(now, self._t_state) * self.scale
        self._t_state = now
        self.state = state

    def state_ms(self):
        # chip milliseconds spent in each state so far
        self.set_state(self.state)
        out = {}
        for k, v in self.state_us.items():
            out[k] = int(v // 1000)
        return out

    # --- invalid use ----------------------------------------------------------------

    def bad(self, msg):
        # Something a real chip would ignore or reject: counted, kept, printed once.
        self.invalid += 1
        self._keep(msg)

    def note(self, msg):
        # Ignored by the chip as the datasheet says, but harmless in the sequence
        # it came in (the driver's next step does what was meant): kept, not counted.
        self.notes += 1
        self._keep("note: " + msg)

    def _keep(self, msg):
        if len(self.log) < _LOG_MAX:
            self.log.append(msg)
        if msg not in self._printed and len(self._printed) < _PRINT_MAX:
            self._printed.append(msg)
            sys.stderr.write("radio %s: %s\n" % (self.name, msg))

    # --- the air and the timers -------------------------------------------------------

    def poll(self):
        # Bring the chip up to now: take what arrived on the air, run due timers.
        if self.closed:
            return
        while True:
            data = self.air.take()
            if data is None:
                break
            self._arrived(data)
        while True:
            now = ticks_us()
            name = None
            due = 0
            for k, t in self._timers.items():
                if ticks_diff(t, now) <= 0 and (name is None or ticks_diff(t, due) < 0):
                    name = k
                    due = t
            if name is None:
                break
            del self._timers[name]
            if name == "rxdone":
                self._rx_done()
            else:
                self.on_timer(name)
        self._prune()

    def _next_due_us(self):
        now = ticks_us()
        best = None
        for t in self._timers.values():
            d = ticks_diff(t, now)
            if best is None or d < best:
                best = d
        for p in self._flight:
            d = ticks_diff(p.t1, now) + self.slack_us
            if best is None or d < best:
                best = d
        return best

    def _arrived(self, data):
        h = airwire.parse(data)
        if h is None:
            self.counters["foreign"] += 1
            self.bad("datagram on the air port that is not an FPA2 transmission: dropped")
            return
        now = ticks_us()
        p = Packet(h, bytes(memoryview(data)[airwire.HDR:]), now, ticks_add(now, h[8]))
        if len(self._flight) >= _FLIGHT_MAX:
            self._flight.pop(0)
        self._flight.append(p)
        if self.rx_pkt is not None:
            if airwire.compatible(self.rx_params(), h):
                self.rx_pkt.corrupt = True  # two packets on one channel at once
                self.counters["collided"] += 1
            return
        if self._rx_since is not None:
            self._try_lock(p)

    def _prune(self):
        now = ticks_us()
        keep = []
        for p in self._flight:
            if ticks_diff(p.t1, now) + self.slack_us > 0:
                keep.append(p)
            elif not p.locked:
                if self.rx_params() is not None and airwire.compatible(self.rx_params(), p.hdr):
                    self.counters["missed"] += 1  # on our channel while we were not listening
                else:
                    self.counters["foreign"] += 1
        self._flight = keep

    def _try_lock(self, p):
        rx = self.rx_params()
        now = ticks_us()
        h = p.hdr
        if p.locked or rx is None or not airwire.compatible(rx, h):
            return False
        # the share of the packet's (real) air time that its preamble can spare
        nsym_x4 = symbols_x4(len(p.payload), h[2], h[3], h[6], not h[5] & 4, h[5] & 2, h[5] & 8, False)
        late = h[8] * 4 * max(0, h[6] - _DETECT_SYMS) // nsym_x4
        if ticks_diff(self._rx_since, ticks_add(p.t0, max(late, self.slack_us))) > 0:
            return False  # we started listening after its preamble
        if ticks_diff(p.t1, now) <= 0 and ticks_diff(self._rx_since, ticks_add(p.t0, self.slack_us)) > 0:
            return False  # over before we listened
        p.locked = True  # this receiver has decided about it, heard or not
        if self.air.lost():
            self.counters["lost"] += 1
            return False
        p.rssi, p.snr = self.air.link(h[7])
        if not airwire.above_floor(h[2], h[1], p.rssi, p.snr):
            self.counters["weak"] += 1
            return False
        self.rx_pkt = p
        self.at_real("rxdone", p.t1 if ticks_diff(p.t1, now) > 0 else now)
        self.on_detect(p)
        return True

    def start_listening(self):
        self._rx_since = ticks_us()
        self.rx_pkt = None
        for p in self._flight:
            if self._try_lock(p):
                break

    def stop_listening(self):
        self._rx_since = None
        if self.rx_pkt is not None:
            self.rx_pkt = None
            self.counters["missed"] += 1  # left RX in the middle of a packet
        self.cancel("rxdone")

    def receiving(self):
        self.poll()
        return self.rx_pkt is not None

    def _rx_done(self):
        p = self.rx_pkt
        self.rx_pkt = None
        if p is None:
            return
        if p.corrupt:
            self.counters["crc_err"] += 1
        else:
            self.counters["rx"] += 1
        self.on_rx_done(p)

    def transmit(self, hdr_args, payload, toa):
        self.last_toa_us = toa
        self.air.send(airwire.header(*(hdr_args + (self.real_us(toa),))), payload)
        self.tx_power.append(hdr_args[7])
        if len(self.tx_power) > 16:
            self.tx_power.pop(0)
        self.at("txdone", toa)

    # --- asyncio: DIO lines rise while the host waits ------------------------------------

    def start(self):
        # Call from a running event loop (the HAL does, inside app.main).
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._air_task()), asyncio.create_task(self._timer_task())]

    async def _air_task(self):
        while not self.closed:
            await _readable(self.air.sock)
            self.poll()

    async def _timer_task(self):
        while not self.closed:
            self._kick.clear()
            self.poll()
            due = self._next_due_us()
            try:
                if due is None:
                    await self._kick.wait()
                else:
                    await asyncio.wait_for_ms(self._kick.wait(), max(0, (due + 999) // 1000))
            except asyncio.TimeoutError:  # noqa: UP041 (MicroPython: no builtin TimeoutError)
                pass

    def close(self):
        if self.closed:
            return
        self.set_state(self.state)
        self.closed = True
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        self.air.close()

    # --- for subclasses -------------------------------------------------------------------

    def rx_params(self):
        # airwire header tuple of what the chip listens for, or None
        return None

    def on_detect(self, p):
        pass

    def on_rx_done(self, p):
        pass

    def on_timer(self, name):
        pass


async def _readable(sock):
    # Park this task on asyncio's poller until the socket has a datagram.
    yield asyncio.core._io_queue.queue_read(sock)
