# Deep sleep on an ESP32 board, with stand-in hardware: the real fp.app.main and the MCU
# HAL (fp/hal/mcu.py) on the heltec_v3 profile; `machine` records what the HAL does and its
# deepsleep() ends the "boot" as a board's would (the unix board's Reboot, so main() returns);
# RTC memory is a bytes object that survives it, as RTC slow memory does. Each boot prints
# "boot <cause> fcnt=<counter at boot> taken=<readings taken> rtc=<record bytes left>".
# usage: micropython check_deepsleep.py <profile.json>
import asyncio
import json
import sys

from fp import app
from fp.hal.clock import Clock


class Reboot(Exception):  # the name the supervisor treats as an ordered restart
    pass


class Pin:
    OUT = 1
    IN = 0

    def __init__(self, n, mode=None, pull=None, value=None):
        self.n = n

    def value(self, v=None):
        return 0


class Any:
    def __init__(self, *a, **kw):
        pass

    def feed(self):
        pass


class I2C(Any):
    def writeto(self, addr, data):
        raise OSError(19)  # no sensor fitted: the reading goes without it


class ADC(Any):
    def read_uv(self):
        return 800000


class RTC:
    mem = b""

    def memory(self, data=None):
        if data is None:
            return RTC.mem
        RTC.mem = bytes(data)


class machine:
    Pin = Pin
    SPI = UART = Any
    I2C = I2C
    ADC = ADC
    WDT = Any
    RTC = RTC
    PWRON_RESET, WDT_RESET, DEEPSLEEP_RESET = 1, 3, 4
    cause = 1
    slept = []

    @staticmethod
    def reset_cause():
        return machine.cause

    @staticmethod
    def deepsleep(ms):
        machine.slept.append(ms)
        raise Reboot()

    @staticmethod
    def lightsleep(ms):
        pass


class Modem:
    # nobody answers: every uplink waits for a retry, so the node has something to keep
    def __init__(self, **kw):
        pass

    def get_time_on_air_us(self, n):
        return 60000

    async def send(self, packet, tx_at_ms=None):
        await asyncio.sleep_ms(1)

    async def recv(self, timeout_ms=None, rx_length=0xFF, rx_packet=None):
        await asyncio.sleep_ms(min(timeout_ms or 10, 10))
        return None

    def sleep(self):
        pass

    def standby(self):
        pass

    def configure(self, lora_cfg):  # the driver's: a node retunes for its RX2 window
        pass


class lora:
    AsyncSX1262 = AsyncSX1276 = Modem


sys.modules["lora"] = lora
profile = json.load(open(sys.argv[1]))
taken = []
app._trace = lambda ev, v: taken.append(v) if ev == "taken" else None
with open("config.json", "w") as f:
    json.dump(
        {
            "id": "0123456789abcdef",
            "key": "0102030405060708090a0b0c0d0e0f10",
            "role": "node",
            "board": profile["name"],
            "dr": 5,
            "interval": 900,
            "rx_window": 0.1,
            "retry_base": 8,
            "status_every": 3600,
            "trace": True,
            "seed": 1,
        },
        f,
    )


def boot(cause):
    from fp.hal import board

    machine.cause = cause
    del taken[:]
    cfg = json.load(open("config.json"))
    cfg.update({"region": "EU868", "watchdog_s": 0, "sleep": True})
    hal = board.make(cfg, profile=profile, clock=Clock(), machine=machine)
    hal.wdt = Any()
    why = asyncio.run(app.main("config.json", hal=hal))
    asyncio.new_event_loop()
    from fp.journal import Journal

    j = Journal("journal")
    pending = j.pending()
    j.close()
    print(
        "boot",
        cause,
        "why=%s" % why.split(":")[0],
        "taken=%d" % len(taken),
        "pending=%s" % pending,
        "rtc=%d" % len(RTC.mem),
        "slept=%d" % (machine.slept[-1] // 1000 if machine.slept else -1),
    )


boot(machine.PWRON_RESET)  # first boot: a reading and a status, then a deep sleep until the retry
boot(machine.DEEPSLEEP_RESET)  # woken: the schedule and the counter go on, no new reading yet
boot(machine.WDT_RESET)  # a crash with a record left in RTC memory: not trusted, counter from flash
RTC.mem = RTC.mem[:40] + bytes((RTC.mem[40] ^ 1,)) + RTC.mem[41:]
boot(machine.DEEPSLEEP_RESET)  # a deep-sleep wake with a damaged record: refused, as after a power cut
