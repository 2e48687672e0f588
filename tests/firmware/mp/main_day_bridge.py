# A bridge's stand-ins for tests/firmware/mp/main_day.py: two nodes' uplinks, one a minute, on
# its radio, and a TEST STAND-IN for the edge on its UART (HELLO_ACK, an ACK for each frame, an
# ACK downlink for each confirmed uplink, for the bridge to send in the node's RX1).
import gc
import json
import struct

from fp import frame as fr
from fp.frame import Deframer
from main_day import CONFIRMED_UP, Air, standin


class BridgeAir(Air):
    # two nodes taking turns: a confirmed uplink a minute
    def __init__(self, clock, sf):
        Air.__init__(self, clock, sf)
        self.at = 20000
        self.fcnt = 0
        self.frame = bytearray(29)

    def next(self):
        f = self.frame
        struct.pack_into("<BIBHB", f, 0, CONFIRMED_UP, 0x26010000 + (self.fcnt & 1), 0, self.fcnt >> 1, 1)
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
        self.rx = b""
        self.frames = Deframer()
        self.counters = {"uplinks": 0, "status": 0, "acked": 0}

    def readinto(self, buf):
        a = gc.mem_alloc()
        n = min(len(buf), len(self.rx))
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        standin(a)
        return n

    def write(self, data):
        a = gc.mem_alloc()
        for ftype, seq, payload in self.frames.feed(data):
            if ftype == fr.HELLO:
                ack = {
                    "id": "0000000000000001",
                    "proto": 1,
                    "isn": 7,
                    "win": 8,
                    "time": 1700000000,
                    "re": json.loads(bytes(payload))["isn"],
                }
                self.rx += fr.encode(fr.HELLO_ACK, 0, json.dumps(ack).encode())
            elif fr.is_sequenced(ftype):
                result = b"\x00"
                if ftype == fr.UPLINK:
                    self.counters["uplinks"] += 1
                    up = payload[7:]
                    if up[0] == CONFIRMED_UP:  # an ACK downlink (unsigned: a bridge holds no keys)
                        result += struct.pack(
                            "<BIBH", 0x60, struct.unpack_from("<I", up, 1)[0], 0x20, 0
                        ) + bytes(4)
                elif ftype == fr.STATUS:
                    self.counters["status"] += 1
                self.counters["acked"] += 1
                self.rx += fr.encode(fr.ACK, seq, result)
        standin(a)
        return len(data)

    def close(self):
        pass
