# A simulated day of a node, stepped through the HAL clock (fp/hal/clock.StepClock).
# usage: micropython sim_day.py <hours> <interval s> <dr> <loss> [<region> <activation>]
# (EU868 and v1 unless given; abp: a LoRaWAN node of the session in sim_abp.py, which makes its ACKs)
# The node, its device, journal, frame counter and duty budget are the firmware's;
# the medium is SimMedium below: a TEST STAND-IN for the air plus a bridge and edge
# that acknowledge what they hear. Prints one "tx <start ms> <airtime ms>" line per
# transmission, then a JSON summary; the pytest side checks the duty cycle itself.
import asyncio
import gc
import random
import sys

from fp import config
from fp.hal.stepclock import StepClock

hours = float(sys.argv[1])
interval = int(sys.argv[2])
dr = int(sys.argv[3])
loss = float(sys.argv[4])
region = sys.argv[5] if len(sys.argv) > 5 else "EU868"
activation = sys.argv[6] if len(sys.argv) > 6 else "v1"
random.seed(42)


class RxPacket(bytearray):
    # what the lora driver hands over: bytes plus reception metadata
    rssi = -120
    snr = -40
    crc_error = False


class SimMedium:
    def __init__(self, clock, dev, sf, loss):
        self.clock = clock
        self.dev = dev
        self.sf = sf
        self.loss = loss
        self.reply = None
        self.counters = {"tx": 0, "lost": 0}
        self.acks = None  # a LoRaWAN node's: sim_abp.Acks

    def get_time_on_air_us(self, n):
        return time_on_air_us(n, self.sf, 125)

    async def send(self, packet, tx_at_ms=None):
        toa = self.get_time_on_air_us(len(packet)) // 1000
        print("tx", self.clock.ms(), toa)
        self.clock.advance(toa)
        self.counters["tx"] += 1
        if random.random() < self.loss:
            self.counters["lost"] += 1
            self.reply = None
        elif self.acks:
            self.reply = self.acks()
        else:
            # the edge's ACK (port 0), made with the node's own code: no more than a board holds
            from fp.v1frame import sign

            self.reply = sign(rf.unsigned(rf.KIND_DOWNLINK, self.dev.dev_id, rf.fcnt_of(packet), 0), self.dev.key)

    async def recv(self, rx_length=0xFF, timeout_ms=None, rx_packet=None):
        if self.reply is not None and random.random() >= self.loss:
            r = self.reply
            self.reply = None
            self.clock.advance(200 + self.get_time_on_air_us(len(r)) // 1000)
            return RxPacket(r)
        self.reply = None
        self.clock.advance(timeout_ms)
        return None

    def configure(self, lora_cfg):
        pass  # a receive window's channel: the stand-in answers on any

    def standby(self):
        pass

    def sleep(self):
        pass


raw = {
    "id": "0123456789abcdef",
    "key": "0102030405060708090a0b0c0d0e0f10",
    "role": "node",
    "dr": dr,
    "interval": interval,
    "rx_window": 3,
    "retry_base": 8,
    "retry_max": 600,
    "status_every": 3600,
    "journal_max": 128,
    "seed": 1,
    # Fieldpost v1 frames: the LoRaWAN code does not fit this 64K heap yet (peak 67.1K on
    # this 64-bit port against 64.0K with v1; see the issue-14 report)
    "activation": activation,
    "region": region,
}
if activation == "abp":
    from sim_abp import SESSION

    raw.update(SESSION)
cfg = config.validate(raw)
del raw
# as fp/app.py does after boot: the validator goes until a config command needs it
del config
sys.modules.pop("fp.config")
del sys.modules["fp"].config
gc.collect()
from fp import radio_frame as rf  # noqa: E402
from fp.airtime import time_on_air_us  # noqa: E402
from fp.device import Device  # noqa: E402
from fp.fcnt import FrameCounter  # noqa: E402
from fp.hal.unix import UnixBoard  # noqa: E402
from fp.journal import Journal  # noqa: E402

UNIX_PROFILE = {"name": "unix", "mcu": "unix", "outputs": [{"index": 0, "name": "relay"}]}
clock = StepClock()
board = UnixBoard(UNIX_PROFILE, cfg, clock)
journal = Journal("journal", capacity=cfg["journal_max"], seg_bytes=cfg["journal_seg"])
counter = FrameCounter("fcnt", block=cfg["fcnt_block"], floor=journal.max_fcnt + 1)
dev = Device(cfg, "config.json", board, journal, counter)
board.modem = SimMedium(clock, dev, dev.sf, loss)
if dev.lw:
    from sim_abp import Acks

    board.modem.acks = Acks(dev.lw)
# imported once the long-lived buffers exist, as fp/app.py does: in this order a 64K
# heap is less fragmented when the journal's and the duty budget's rings are made
from fp.roles.node import Node  # noqa: E402

events = {"deferred": 0, "acked": 0, "taken": 0, "backoff": 0, "status": 0}
heap_total = gc.mem_free() + gc.mem_alloc()
low = [heap_total]


def trace(event, value):
    if event in events:
        events[event] += 1

    if event == "tx":
        # live heap at its fullest point of the cycle: a frame built, journaled, about to go
        gc.collect()
        free = gc.mem_free()
        low[0] = min(low[0], free)


node = Node(dev, board, trace=trace)
gc.collect()
gc.threshold(gc.mem_free() // 4)  # as fp/app.py does once the role is made
asyncio.run(node.run(until_ms=int(hours * 3600000)))
gc.collect()
import json  # noqa: E402  (for the summary only: not in the heap during the day)

print(
    json.dumps(
        {
            "taken": events["taken"],
            "acked": events["acked"],
            "deferred_events": events["deferred"],
            "deferred": dev.budget.deferred,
            "sent": node.sent,
            "airtime_ms": dev.budget.total_ms,
            "journal": len(journal),
            "dropped": dev.stats["dropped"],
            "backoff_events": events["backoff"],
            "interval_s": dev.interval_ms // 1000,
            # readings neither acknowledged nor waiting in the journal: lost
            # frames made (readings, statuses) neither acknowledged (each counted once, when the
            # journal lets it go) nor still waiting: lost; the harness keeps no per-frame list
            "lost": events["taken"] + events["status"] - dev.stats["acked"] - len(journal),
            "fcnt_writes": counter.writes,
            "heap_total": heap_total,
            "heap_peak_live": heap_total - low[0],
            "heap_free_end": gc.mem_free(),
            "virtual_ms": clock.ms(),
        }
    )
)
