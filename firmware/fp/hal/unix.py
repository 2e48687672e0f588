# The unix virtual board: the real firmware on the MicroPython unix port, for
# the "unix" profile or any board profile. Radio: as the profile says, the
# real lora driver over an emulated SX1276/SX1262 on the loopback air
# (fp/hal/emu/), or the old air modem for chip "udp-air" (fp/hal/air.py).
# UART: the pty edge.sim hands over
# (fp/hal/unix_uart.py). Sensors and battery: smooth simulated values from the
# clock, so a simulated day has a daily temperature swing. Outputs are kept in
# a dict (reported in status). The watchdog is soft: the supervisor raises
# Reboot when a task stalls, which main.py turns into a restart.
import gc
import math

from fp.hal.clock import Clock

_DAY_MS = 86400000


class SoftWDT:
    def __init__(self, timeout_ms):
        self.timeout_ms = timeout_ms
        self.fed = 0

    def feed(self):
        self.fed += 1


class Reboot(Exception):
    pass


class UnixBoard:
    def __init__(self, profile, cfg, clock=None, modem=None, uart=None):
        self.name = profile.get("name", "unix")
        self.profile = profile
        self.clock = clock or Clock(scale=cfg.get("time_scale", 1))
        self.modem = modem
        self.uart = uart
        self.outputs = {}
        self.output_state = {}
        for o in profile.get("outputs") or ():
            idx = o["index"]
            self.output_state[idx] = 0
            self.outputs[idx] = self._setter(idx)
        from fp.hal.wdt import watchdog_ms
        # the profile's MCU limit applies on the virtual board too (a Pico profile clamps)
        self.wdt_ms, self.wdt_warning = watchdog_ms(profile, cfg)
        self.wdt = SoftWDT(self.wdt_ms)
        self.led_on = False
        seed = cfg.get("seed", -1)
        self._phase = (seed % 1000) / 1000 if seed >= 0 else 0.0

    def _setter(self, idx):
        def set_output(value):
            self.output_state[idx] = 1 if value else 0
        return set_output

    def read_climate(self):
        t = self.clock.ms() / _DAY_MS + self._phase
        temp = 18.0 + 6.0 * math.sin(2 * math.pi * t)
        rh = 55.0 - 15.0 * math.sin(2 * math.pi * t)
        return temp, rh

    def battery_v(self):
        # a slow discharge: 4.1 V falling 0.01 V per simulated day, floored at 3.3 V
        v = 4.1 - 0.01 * self.clock.ms() / _DAY_MS
        return max(3.3, v)

    def led(self, on):
        self.led_on = bool(on)

    def heap_free(self):
        return gc.mem_free()

    def reset(self):
        raise Reboot()

    def close(self):
        if self.modem is not None:
            self.modem.close()
        # The UART stays open: it is the pty fd inherited from edge.sim, and a
        # restart (in-process on the unix port) needs it again.


def make(profile, cfg, clock=None, with_uart=None):
    from fp.airtime import region_params
    from fp.hal import board as board_mod
    b = UnixBoard(profile, cfg, clock)
    _, sf, bw, _ = region_params(cfg["region"], cfg["dr"])
    air = cfg.get("air") or {}
    lora_cfg = board_mod.lora_cfg(profile, sf, bw)
    if (profile.get("radio") or {}).get("chip", "udp-air") == "udp-air":
        from fp.hal.air import AirModem
        b.modem = AirModem(b.clock, lora_cfg, port=air.get("port", 0), peers=air.get("peers", ()),
                           loss=air.get("loss", 0.0), rssi=air.get("rssi", -90), snr=air.get("snr", 7.5),
                           seed=air.get("seed"))
    else:
        from fp.hal.emu import radio
        b.modem = radio.make_modem(profile, b.clock, lora_cfg, air)
    if with_uart is None:
        with_uart = cfg["role"] == "bridge"
    if with_uart:
        b.uart = shared_uart()
    return b


_uart = None


def shared_uart():
    global _uart
    if _uart is None:
        from fp.hal.unix_uart import UnixUART
        _uart = UnixUART()
    return _uart
