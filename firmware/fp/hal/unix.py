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
# The virtual board's RTC memory: module state, so it is kept across main.py's in-process
# restart (which keeps fp.hal.unix, the "hardware") as RTC slow memory is kept across a deep
# sleep, and lost when the process is killed, as RTC memory is on a power cut. Used only with
# config "deep_reboot" (a virtual deep sleep that really boots again, fp/resume.py).
_rtc = {"mem": None, "deep_wake": False, "power": None}


_DEEP_MIN_MS = 5000  # as fp/hal/mcu.py: shorter waits light-sleep


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
        from fp.hal import wdt
        from fp.store import unload
        # the profile's MCU limit applies on the virtual board too (a Pico profile clamps)
        self.wdt_ms, self.wdt_warning = wdt.watchdog_ms(profile, cfg)
        del wdt
        unload("fp.hal.wdt")  # needed once: its RAM goes back to the role
        self.wdt = SoftWDT(self.wdt_ms)
        self.led_on = False
        seed = cfg.get("seed", -1)
        self._phase = (seed % 1000) / 1000 if seed >= 0 else 0.0
        # The power model (fp/power.py) with the profile's datasheet currents: the
        # virtual board has no current to measure, so it accounts time per state.
        self.power = None
        if profile.get("power") and cfg.get("role", "node") == "node":  # a bridge is on the Pi's power
            from fp.power import PowerModel
            tx_dbm = (profile.get("radio") or {}).get("tx_power_dbm", 14)
            self.power = PowerModel(profile["power"], self.clock, tx_dbm)
            profile["power"].pop("sources", None)  # citations, for people: not kept in RAM
        # How this MCU sleeps between readings: an RP2040 light-sleeps (RAM kept), an
        # ESP32 deep-sleeps (a boot on waking). Only a node sleeps: a bridge is on the Pi's power.
        self.sleep_kind = "light" if profile.get("mcu") == "rp2040" else "deep"
        self.sleeps = cfg.get("sleep", True) and cfg.get("role", "node") == "node"
        self.battery_mah = (profile.get("battery") or {}).get("capacity_mah", 0)
        if cfg.get("deep_reboot") and self.sleeps and self.sleep_kind == "deep":
            # A deep sleep boots again, as on an ESP32: fp/app.py packs what must survive
            # (hal.keep) and takes it back after the wake (hal.resumed).
            self.keep = None
            self.resumed = _rtc["mem"] if _rtc["deep_wake"] else None
            if self.resumed is not None and _rtc["power"] is not None:
                self.power = _rtc["power"]  # the same battery: the day's account goes on
                self.power.rebase(self.clock)
            _rtc["mem"] = None
            _rtc["deep_wake"] = False

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

    async def sleep_until(self, deadline_ms, beat=None, slice_ms=10000):
        # The node's "until when": the virtual board sleeps on its clock (the time is
        # charged to the sleep state, and a deep sleep's wake as a boot), beating in
        # slices so the supervisor sees the node alive.
        clock = self.clock
        deep = self.sleeps and self.power is not None
        if getattr(self, "keep", None) is not None and deadline_ms - clock.ms() >= _DEEP_MIN_MS:
            # deep_reboot: RTC memory written, the sleep passes, then the board boots again
            _rtc["mem"] = self.keep(deadline_ms)
            if deep:
                self.power.mcu("deep")
            await clock.sleep_ms(deadline_ms - clock.ms())
            if deep:
                self.power.mcu("active")
            _rtc["power"] = self.power
            _rtc["deep_wake"] = True
            raise Reboot()
        if deep:
            self.power.mcu(self.sleep_kind)
        try:
            while True:
                left = deadline_ms - clock.ms()
                if left <= 0:
                    break
                if beat:
                    beat()
                await clock.sleep_ms(min(left, slice_ms) if slice_ms > 0 else left)
        finally:
            if deep:
                self.power.mcu("active")

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
