# The sensor drivers (fp/sensors/) on simulated buses: each bus replays the bytes a
# device sends (given as hex by the host test) and records what the driver wrote.
# usage: micropython check_sensors.py '<json cases>'; prints one JSON line per case.
import json
import sys
from binascii import unhexlify

from fp.sensors import bme280, ds18b20, sht3x


class I2CBus:
    # an I2C device: writes recorded, reads answered from a register map (or one reply)
    def __init__(self, regs=None, reply=None):
        self.regs = {int(k): unhexlify(v) for k, v in (regs or {}).items()}
        self.reply = unhexlify(reply) if reply else b""
        self.writes = []

    def writeto(self, addr, data):
        self.writes.append(bytes(data).hex())

    def readfrom_into(self, addr, buf):
        buf[:] = self.reply[: len(buf)]

    def writeto_mem(self, addr, reg, data):
        self.writes.append("%02x:%s" % (reg, bytes(data).hex()))

    def readfrom_mem(self, addr, reg, n):
        return self.regs[reg][:n]


class OneWireBus:
    # a 1-Wire bus with one DS18B20: presence on reset, the scratchpad on Read Scratchpad
    def __init__(self, scratch, present=True):
        self.scratch = unhexlify(scratch)
        self.present = present
        self.writes = []

    def reset(self, required=False):
        return self.present

    def writebyte(self, b):
        self.writes.append(b)

    def select_rom(self, rom):
        self.writes.append("rom")

    def readinto(self, buf):
        buf[:] = self.scratch[: len(buf)]


def run(case):
    kind = case["kind"]
    if kind == "crc":
        return {
            "sht3x": sht3x.crc8(unhexlify(case["sht3x"]), 0, 2),
            "ds18b20": ds18b20.crc8(unhexlify(case["ds18b20"]), 7),
        }
    nosleep = lambda ms: None  # noqa: E731
    if kind == "sht3x":
        bus = I2CBus(reply=case["reply"])
        drv = sht3x.SHT3x(bus, 0x44, sleep_ms=nosleep)
    elif kind == "bme280":
        bus = I2CBus(regs=case["regs"])
        drv = bme280.BME280(bus, 0x76, sleep_ms=nosleep)
    else:
        bus = OneWireBus(case["scratch"], case.get("present", True))
        drv = ds18b20.DS18B20(bus, sleep_ms=nosleep)
    try:
        value = drv.read()
    except OSError as e:
        return {"error": str(e), "writes": bus.writes}
    out = {"value": value, "writes": bus.writes}
    if kind == "bme280":
        out["pressure_pa"] = drv.pressure_pa
    return out


for case in json.loads(sys.argv[1]):
    print(json.dumps(run(case)))
