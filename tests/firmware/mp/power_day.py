# A node's simulated day on a board profile's power model (fp/power.py), time stepped
# through the HAL clock. usage: micropython power_day.py <profile.json> <hours> <interval s>
# <dr> <sleep 0|1> [garbage 0|1]. With garbage=1 the GC is off for the run and the bytes
# allocated per reading cycle are reported (run it with a large -X heapsize). The medium is a TEST STAND-IN for the air plus a bridge and edge that
# acknowledge each uplink ~200 ms after it. Prints the node's own last status (port 3
# JSON, as the edge gets it) and the time per power state.
import asyncio
import json
import sys

from fp import config
from fp import radio_frame as rf
import v1build
from fp.airtime import time_on_air_us
from fp.region import region_params
from fp.device import Device
from fp.fcnt import FrameCounter
from fp.hal.stepclock import StepClock
from fp.hal.unix import UnixBoard
from fp.journal import Journal
from fp.power import MCU_STATES, RADIO_STATES

profile = json.load(open(sys.argv[1]))
hours = float(sys.argv[2])
cfg = config.validate(
    {
        "id": "0123456789abcdef",
        "key": "0102030405060708090a0b0c0d0e0f10",
        "role": "node",
        "board": profile["name"],
        "interval": int(sys.argv[3]),
        "dr": int(sys.argv[4]),
        "sleep": sys.argv[5] == "1",
        "status_every": 3600,
        "seed": 1,
        # this Medium answers Fieldpost v1 frames (a LoRaWAN node joins first: see the issue-14 report)
        "activation": "v1",
    }
)


class Medium:
    def __init__(self, clock, dev, sf):
        self.clock, self.dev, self.sf, self.reply = clock, dev, sf, None

    def get_time_on_air_us(self, n):
        return time_on_air_us(n, self.sf, 125)

    async def send(self, packet, tx_at_ms=None):
        self.clock.advance(self.get_time_on_air_us(len(packet)) // 1000)
        self.reply = v1build.build_downlink(self.dev.dev_id, self.dev.key, rf.fcnt_of(packet))

    async def recv(self, rx_length=0xFF, timeout_ms=None, rx_packet=None):
        r, self.reply = self.reply, None
        if r is None:
            self.clock.advance(timeout_ms)
            return None
        self.clock.advance(200 + self.get_time_on_air_us(len(r)) // 1000)
        return r

    def sleep(self):
        pass

    def standby(self):
        pass


clock = StepClock()
board = UnixBoard(profile, cfg, clock)
journal = Journal("journal", capacity=cfg["journal_max"])
counter = FrameCounter("fcnt", block=cfg["fcnt_block"])
dev = Device(cfg, "config.json", board, journal, counter)
_, sf, _, _ = region_params(cfg["region"], cfg["dr"])
board.modem = Medium(clock, dev, sf)
from fp.roles.node import Node  # noqa: E402

node = Node(dev, board)
measure = len(sys.argv) > 6 and sys.argv[6] == "1"
if measure:
    import gc

    gc.collect()
    gc.disable()
    alloc0 = gc.mem_alloc()
asyncio.run(node.run(until_ms=int(hours * 3600000)))
garbage = (gc.mem_alloc() - alloc0) // max(1, dev.stats["taken"]) if measure else None
p = board.power
states = MCU_STATES + RADIO_STATES
print(
    json.dumps(
        {
            "status": json.loads(dev.status(node.uptime_s())),
            "mah_day": p.mah_per_day(),
            "wakes": p.wakes,
            "taken": dev.stats["taken"],
            "garbage_per_cycle": garbage,
            "state_s": {states[i]: p.state_ms[i] // 1000 for i in range(len(states))},
        }
    )
)
