# The real entry point (main.py: config, supervisor, role) through a simulated day, time
# stepped through the HAL clock. usage: micropython main_day.py <hours>, run in the module's
# flash folder (its config.json says the role) with main.py beside it.
# Only the board's hardware is the test's, put where fp/hal/unix.make builds it:
# - DayClock: virtual time for every task of the firmware (node or bridge) at once; it moves
#   on to the earliest wake-up once every task waits (nothing runnable for a few rounds);
# - NodeAir: a TEST STAND-IN for the air plus a LoRaWAN network that answers a node's join
#   request with a join accept and its confirmed uplinks with an ACK, each at the start of
#   the class A receive window (RX1: 5 s after a join request, 1 s after a data frame);
#   every 10th uplink is lost;
# - BridgeAir and EdgeUart: for a bridge, two nodes' uplinks, one a minute, on its radio, and a
#   TEST STAND-IN for the edge on its UART (HELLO_ACK, ACK of each frame, an ACK downlink for
#   each confirmed uplink, for the bridge to send in the node's RX1).
# Prints "day {json}" at the end of the day (then exits), and every line the firmware prints;
# the pytest side counts boots, restarts and MemoryErrors.
import asyncio
import gc
import json
import struct
import sys

from fp.hal import unix
from fp.hal.clock import StepClock

_CONFIRMED_UP = 0x80
_IDLE_ROUNDS = 4  # rounds of the event loop with nothing new before the clock moves on
_LIVE_EVERY_MS = 600000  # live heap (after a collection) sampled every 10 virtual minutes
day = {"boot_live": 0, "peak_alloc": 0, "peak_live": 0, "heap_total": gc.mem_free() + gc.mem_alloc()}


class DayClock(StepClock):
    scale = 1  # virtual ms are the board's ms: the specification's receive windows

    def __init__(self, end_ms, uart=None):
        StepClock.__init__(self)
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
        if self.t >= self.live_at:
            self.live_at = self.t + _LIVE_EVERY_MS
            gc.collect()
            live = gc.mem_alloc()
            if not day["boot_live"]:
                day["boot_live"] = live
            day["peak_live"] = max(day["peak_live"], live)
        if self.t >= self.end:
            day["virtual_ms"] = self.t
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
        self.sent(packet)

    async def recv(self, rx_length=0xFF, timeout_ms=None, rx_packet=None):
        clock = self.clock
        at, frame = self.next()
        if frame is not None and clock.t <= at <= clock.t + timeout_ms:
            await clock.sleep_ms(at - clock.t + self.get_time_on_air_us(len(frame)) // 1000)
            self.heard()
            self.counters["rx"] += 1
            return RxPacket(frame)
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


class NodeAir(Air):
    def __init__(self, clock, sf, app_key):
        Air.__init__(self, clock, sf)
        self.app_key = app_key
        self.session = None
        self.down = 0
        self.reply = None
        self.at = 0
        self.counters["joins"] = 0
        self.counters["acks"] = 0

    def next(self):
        return self.at, self.reply

    def heard(self):
        self.reply = None

    def sent(self, up):
        self.reply = None
        if self.counters["tx"] % 10 == 0:
            return  # lost on the air
        if up[0] == 0:  # a join request: the accept opens RX1 5 s after it
            self.reply = self.join_accept(up[17] | up[18] << 8)
            self.at = self.clock.t + 5000
            self.counters["joins"] += 1
        elif up[0] == _CONFIRMED_UP and self.session is not None:
            self.reply = self.session.build(0x60, self.down, None, b"", fctrl=0x20)  # ACK bit
            self.down += 1
            self.at = self.clock.t + 1000
            self.counters["acks"] += 1

    def join_accept(self, dev_nonce):
        # LoRaWAN 1.0.4 section 6.2.3: the network encrypts with AES *decrypt*
        import cryptolib
        from fp.lorawan.crypto import Cmac, aes
        from fp.lorawan.frames import Session
        jn, net = b"\x01\x00\x00", b"\x13\x00\x00"
        plain = jn + net + struct.pack("<IBB", 0x26011234, 0, 1)
        plain += Cmac(self.app_key).digest(b"\x20", plain)[:4]
        keys = []
        for tag in (1, 2):
            k = bytearray(16)
            aes(self.app_key).encrypt(bytes((tag,)) + jn + net + struct.pack("<H", dev_nonce) + bytes(7), k)
            keys.append(k)
        self.session = Session(0x26011234, keys[0], keys[1])
        self.down = 0
        return b"\x20" + cryptolib.aes(self.app_key, 1).decrypt(plain)


class BridgeAir(Air):
    # two nodes taking turns: a confirmed uplink a minute
    def __init__(self, clock, sf):
        Air.__init__(self, clock, sf)
        self.at = 20000
        self.fcnt = 0
        self.frame = bytearray(29)

    def next(self):
        f = self.frame
        struct.pack_into("<BIBHB", f, 0, _CONFIRMED_UP, 0x26010000 + (self.fcnt & 1), 0, self.fcnt >> 1, 1)
        return self.at, f

    def heard(self):
        self.fcnt += 1
        self.at += 60000

    def sent(self, down):
        pass


class EdgeUart:
    # the bridge's UART with a TEST STAND-IN for the edge on the other end: every frame is
    # answered at once (its bytes are in self.rx for the bridge to read)
    def __init__(self):
        from fp.frame import Deframer
        self.rx = b""
        self.frames = Deframer()
        self.counters = {"uplinks": 0, "status": 0, "acked": 0}

    def readinto(self, buf):
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n

    def write(self, data):
        from fp import frame as fr
        for ftype, seq, payload in self.frames.feed(data):
            if ftype == fr.HELLO:
                ack = {"id": "0000000000000001", "proto": 1, "isn": 7, "win": 8, "time": 1700000000,
                       "re": json.loads(bytes(payload))["isn"]}
                self.rx += fr.encode(fr.HELLO_ACK, 0, json.dumps(ack).encode())
            elif fr.is_sequenced(ftype):
                result = b"\x00"
                if ftype == fr.UPLINK:
                    self.counters["uplinks"] += 1
                    up = payload[7:]
                    if up[0] == _CONFIRMED_UP:  # an ACK downlink (unsigned: a bridge holds no keys)
                        result += struct.pack("<BIBH", 0x60, struct.unpack_from("<I", up, 1)[0], 0x20, 0) + bytes(4)
                elif ftype == fr.STATUS:
                    self.counters["status"] += 1
                self.counters["acked"] += 1
                self.rx += fr.encode(fr.ACK, seq, result)
        return len(data)

    def close(self):
        pass


def make(profile, cfg, clock=None, with_uart=None):
    # fp/hal/unix.make with the test's hardware: kept across main.py's in-process restarts
    b = unix.UnixBoard(profile, cfg, CLOCK)
    _, sf, _, _ = __import__("fp.airtime").airtime.region_params(cfg["region"], cfg["dr"])
    if cfg["role"] == "bridge":
        b.uart = CLOCK.uart = EdgeUart()
        b.modem = BridgeAir(CLOCK, sf)
    else:
        from binascii import unhexlify
        b.modem = NodeAir(CLOCK, sf, unhexlify(cfg["key"]))
    global AIR
    AIR = b.modem
    return b


CLOCK = DayClock(int(float(sys.argv[1]) * 3600000))
AIR = None
unix.make = make
del StepClock
sys.argv[:] = ["main.py", "config.json"]
gc.collect()
day["harness"] = gc.mem_alloc()  # this file and its stand-ins: no board has them in its heap
import main  # noqa: E402,F401  (runs for ever: the DayClock ends the day)
