# The MCU HAL (fp/hal/mcu.py) built from each real board profile with stand-in
# hardware: a recording `machine` and `lora` module. Prints JSON per board.
import json
import struct
import sys


class Rec:
    log = []


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, n, mode=None, pull=None, value=None):
        self.n = n
        self.v = value or 0
        Rec.log.append(("pin", n, mode))

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        Rec.log.append(("set", self.n, v))


class SPI:
    def __init__(self, id, **kw):
        self.id = id
        self.kw = kw


class I2C:
    def __init__(self, id, sda, scl, freq):
        self.id = id
        self.sda = sda.n
        self.scl = scl.n

    def writeto(self, addr, data):
        Rec.log.append(("i2c_w", addr, bytes(data)))

    def readfrom_into(self, addr, buf):
        # SHT31 raw words for 25.0 degC (0x6666) and 50 %RH (0x8000), each with its CRC-8
        buf[:] = struct.pack(">HBHB", 0x6666, 0x93, 0x8000, 0xA2)


class ADC:
    def __init__(self, pin):
        self.pin = pin.n

    def read_uv(self):
        return 1200000  # 1.2 V at the pin


class WDT:
    # as the ports do: rp2's machine.WDT refuses a timeout above 8388 ms
    max_ms = None

    def __init__(self, timeout):
        if WDT.max_ms is not None and timeout > WDT.max_ms:
            raise ValueError("WDT timeout too long")
        self.timeout = timeout


class UART:
    def __init__(self, id, **kw):
        self.id = id
        self.kw = kw


class machine:
    Pin = Pin
    SPI = SPI
    I2C = I2C
    ADC = ADC
    WDT = WDT
    UART = UART


class Modem:
    def __init__(self, **kw):
        self.kw = kw


class AsyncSX1276(Modem):
    chip = "sx1276"


class AsyncSX1262(Modem):
    chip = "sx1262"


class lora:
    AsyncSX1276 = AsyncSX1276
    AsyncSX1262 = AsyncSX1262


sys.modules["lora"] = lora
from fp.hal import board  # noqa: E402

for name in sys.argv[2:]:
    profile = json.load(open(sys.argv[1] + "/" + name + ".json"))
    cfg = {"role": "bridge", "region": "EU868", "dr": 0, "watchdog_s": 20, "board": name}
    Rec.log = []
    WDT.max_ms = 8388 if profile["mcu"] == "rp2040" else None
    hal = board.make(cfg, profile=profile, machine=machine)
    cfg["watchdog_s"] = 0  # config unset: the profile's own timeout
    from_profile = board.make(cfg, profile=profile, machine=machine).wdt.timeout
    m = hal.modem
    pins = {}
    for k, v in m.kw.items():
        if isinstance(v, Pin):
            pins[k] = v.n
    temp, rh = hal.read_climate()
    hal.outputs[0](1)
    print(
        json.dumps(
            {
                "board": name,
                "chip": m.chip,
                "pins": pins,
                "spi": [m.kw["spi"].id, m.kw["spi"].kw["baudrate"]],
                "lora": m.kw["lora_cfg"],
                "temp": round(temp, 2),
                "rh": round(rh, 2),
                "battery": hal.battery_v(),
                "wdt_ms": hal.wdt.timeout,
                "wdt_warning": hal.wdt_warning,
                "wdt_profile_ms": from_profile,
                "uart": [hal.uart.id, hal.uart.kw["tx"], hal.uart.kw["rx"]],
                "output0": hal.output_state[0],
                "output_pins": [o["pin"] for o in profile.get("outputs") or ()],
                # pins driven while the battery was read (its divider's enable, if any)
                "bat_sets": [
                    e[1:] for e in Rec.log if e[0] == "set" and e[1] == profile["battery"].get("enable_pin")
                ],
                "sht_cmd": [e for e in Rec.log if e[0] == "i2c_w"][0][2] == b"\x24\x00",
            }
        )
    )

# the profile picks the driver: a BME280 on the board's I2C, a DS18B20 on a 1-Wire pin
profile = json.load(open(sys.argv[1] + "/heltec_v3.json"))


class onewire:  # stands in for MicroPython's onewire module (a board has it built in)
    class OneWire:
        def __init__(self, pin):
            self.pin = pin.n


sys.modules["onewire"] = onewire
WDT.max_ms = None
for sensors in (
    [{"type": "bme280", "address": 0x77}],
    [{"type": "ds18b20", "pin": 4}],
    [{"type": "sht30"}],
    [],
):
    profile["sensors"] = sensors
    hal = board.make(
        {"role": "node", "region": "EU868", "dr": 0, "board": "heltec_v3"}, profile=profile, machine=machine
    )
    s = hal._sensor
    print(
        json.dumps(
            {
                "sensors": sensors,
                "driver": type(s).__name__ if s else None,
                "where": getattr(s, "addr", None) or getattr(getattr(s, "ow", None), "pin", None),
            }
        )
    )
