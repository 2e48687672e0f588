# The real entry point (main.py: config, supervisor, role) through a simulated day, time
# stepped through the HAL clock. usage: micropython -c "import main_day" <hours> [garbage], run
# in the module's flash folder (its config.json says the role) with main.py beside it, and
# main_day_node or main_day_bridge (imported as main_day: they take Air from here).
# garbage: the GC is off from the 10th minute on, and the bytes the firmware allocated per
# uplink (node) or per uplink forwarded (bridge) are reported, the stand-ins' own allocations
# left out (run it with a large -X heapsize).
# Only the board's hardware is the test's, put where fp/hal/unix.make builds it:
# - DayClock: virtual time for every task of the firmware (node or bridge) at once; it moves
#   on to the earliest wake-up once every task waits (nothing runnable for a few rounds);
# - the air and what is beyond it, for a node (main_day_node.py: the air and a LoRaWAN network)
#   or for a bridge (main_day_bridge.py: nodes on the air, the edge on its UART).
# Prints "day {json}" at the end of the day (then exits), and every line the firmware prints;
# the pytest side counts boots, restarts and MemoryErrors.
import asyncio
import gc
import json
import sys

from fp.hal import unix
from fp.hal.clock import StepClock

CONFIRMED_UP = 0x80
_IDLE_ROUNDS = 4  # rounds of the event loop with nothing new before the clock moves on
_LIVE_EVERY_MS = 600000  # live heap (after a collection) sampled every 10 virtual minutes
day = {"boot_live": 0, "peak_alloc": 0, "peak_live": 0, "heap_total": gc.mem_free() + gc.mem_alloc()}


def standin(since):
    # bytes the test's stand-ins allocated since gc.mem_alloc() was `since`: not the firmware's
    # garbage (counted with the GC off only: a collection in between would make it negative)
    if GARBAGE:
        day["standin"] = day.get("standin", 0) + gc.mem_alloc() - since


class DayClock(StepClock):
    scale = 1  # virtual ms are the board's ms: the specification's receive windows

    def __init__(self, end_ms, uart=None):
        super().__init__()
        self.end = end_ms
        self.uart = uart
        self.wakes = []
        self.moves = 0  # wakes added or removed: something ran
        self.live_at = 0

    def advance(self, vms):
        if vms <= 0:
            return
        self.t += int(vms)
        a = gc.mem_alloc()
        if a > day["peak_alloc"]:
            day["peak_alloc"] = a
        if GARBAGE and self.t >= _LIVE_EVERY_MS and "garbage_from" not in day:
            gc.collect()
            gc.disable()
            day["garbage_from"] = (
                gc.mem_alloc(),
                AIR.counters["tx"] + AIR.counters["rx"],
                day.get("standin", 0),
            )
        if self.t >= self.live_at and not GARBAGE:
            self.live_at = self.t + _LIVE_EVERY_MS
            gc.collect()
            live = gc.mem_alloc()
            if not day["boot_live"]:
                day["boot_live"] = live
            day["peak_live"] = max(day["peak_live"], live)
        if self.t >= self.end:
            day["virtual_ms"] = self.t
            if GARBAGE:
                a0, n0, s0 = day.pop("garbage_from")
                n = AIR.counters["tx"] + AIR.counters["rx"] - n0  # uplink and downlink: each a cycle's
                day["garbage_per_cycle"] = (gc.mem_alloc() - a0 - (day["standin"] - s0)) * 2 // max(1, n)
            day.update(AIR.counters)
            if self.uart is not None:
                day.update(self.uart.counters)
            print("day", json.dumps(day))
            raise SystemExit(0)

    async def sleep_ms(self, vms):
        due = self.t + int(vms)
        wakes = self.wakes
        wakes.append(due)
        self.moves += 1
        try:
            idle = 0
            seen = self.moves
            while self.t < due:
                await asyncio.sleep_ms(0)
                if seen != self.moves or (self.uart is not None and self.uart.rx):
                    seen = self.moves
                    idle = 0
                elif due <= min(wakes):
                    idle += 1
                    if idle >= _IDLE_ROUNDS:
                        self.advance(due - self.t)
        finally:
            wakes.remove(due)
            self.moves += 1
        if vms <= 0:
            await asyncio.sleep_ms(0)


class RxPacket(bytearray):
    # what the lora driver hands over: bytes plus reception metadata
    rssi = -97
    snr = 26
    crc_error = False


class Air:
    # the modem interface the roles use (micropython-lib lora AsyncModem), on the DayClock
    def __init__(self, clock, sf):
        self.clock = clock
        self.sf = sf
        self.counters = {"tx": 0, "rx": 0}

    def get_time_on_air_us(self, n):
        from fp.airtime import time_on_air_us

        return time_on_air_us(n, self.sf, 125)

    async def send(self, packet, tx_at_ms=None):
        await self.clock.sleep_ms(self.get_time_on_air_us(len(packet)) // 1000)
        self.counters["tx"] += 1
        a = gc.mem_alloc()
        self.sent(packet)
        standin(a)

    async def recv(self, rx_length=0xFF, timeout_ms=None, rx_packet=None):
        clock = self.clock
        a = gc.mem_alloc()
        at, frame = self.next()
        standin(a)
        if frame is not None and clock.t <= at <= clock.t + timeout_ms:
            await clock.sleep_ms(at - clock.t + self.get_time_on_air_us(len(frame)) // 1000)
            a = gc.mem_alloc()
            self.heard()
            self.counters["rx"] += 1
            pkt = RxPacket(frame)
            standin(a)
            return pkt
        await clock.sleep_ms(timeout_ms)
        return None

    def configure(self, lora_cfg):
        pass

    def standby(self):
        pass

    def sleep(self):
        pass

    def close(self):
        pass


def make(profile, cfg, clock=None, with_uart=None):
    # fp/hal/unix.make with the test's hardware: kept across main.py's in-process restarts
    b = unix.UnixBoard(profile, cfg, CLOCK)
    _, sf, _, _ = __import__("fp.airtime").airtime.region_params(cfg["region"], cfg["dr"])
    # each role's stand-ins in a file of their own: a node's heap holds no edge stand-in
    if cfg["role"] == "bridge":
        from main_day_bridge import BridgeAir, EdgeUart

        b.uart = CLOCK.uart = EdgeUart()
        b.modem = BridgeAir(CLOCK, sf)
    else:
        from binascii import unhexlify

        from main_day_node import NodeAir

        b.modem = NodeAir(CLOCK, sf, unhexlify(cfg["key"]))
    global AIR
    AIR = b.modem
    return b


CLOCK = DayClock(int(float(sys.argv[1]) * 3600000))
GARBAGE = sys.argv[2:] == ["garbage"]
AIR = None
unix.make = make
sys.argv[:] = ["main.py", "config.json"]
gc.collect()
day["harness"] = gc.mem_alloc()  # this file and its stand-ins: no board has them in its heap
import main  # noqa: E402,F401  (runs for ever: the DayClock ends the day)
