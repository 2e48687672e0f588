# Boards with a real MCU (ESP32 + SX1276, ESP32-S3 + SX1262, RP2040 + RFM95W).
# Everything comes from the profile; the radio driver is micropython-lib's
# lora-sx127x / lora-sx126x, installed with mip at provisioning. The hardware
# objects (SPI, pins, I2C) are built here and passed into the drivers, as the
# lora drivers expect.
import gc

from fp.hal import wdt
from fp.hal.clock import Clock


def _pin(machine, n, mode=None, pull=None, value=None):
    if n is None:
        return None
    if mode is None:
        return machine.Pin(n)
    p = machine.Pin(n, mode, pull) if pull is not None else machine.Pin(n, mode)
    if value is not None:
        p.value(value)
    return p


def make_modem(machine, profile, lora_cfg):
    radio = profile["radio"]
    pins = radio["pins"]
    spi_cfg = radio["spi"]
    spi = machine.SPI(spi_cfg["id"], baudrate=spi_cfg.get("baudrate", 2000000), polarity=0, phase=0,
                      sck=machine.Pin(spi_cfg["sck"]), mosi=machine.Pin(spi_cfg["mosi"]),
                      miso=machine.Pin(spi_cfg["miso"]))
    cs = _pin(machine, pins["cs"], machine.Pin.OUT, value=1)
    chip = radio["chip"]
    if chip in ("sx1276", "sx1278", "rfm95w"):
        from lora import AsyncSX1276
        return AsyncSX1276(spi=spi, cs=cs, dio0=_pin(machine, pins["dio0"]),
                           dio1=_pin(machine, pins.get("dio1")),
                           reset=_pin(machine, pins["reset"]), lora_cfg=lora_cfg)
    if chip in ("sx1262", "sx1261"):
        from lora import AsyncSX1262

        class SX1262(AsyncSX1262):
            # DS 15.4 (inverted IQ, which LoRaWAN downlinks use): bit 2 of register 0x0736 must be 0
            # with inverted IQ and 1 (its reset value) with standard IQ. The vendored driver (lora-sx126x
            # 0.1.6, kept unchanged) sets it the other way round, so a node's receive windows would
            # lose long downlinks; this is its _invert_workaround with the datasheet's polarity.
            def _invert_workaround(self, enable):
                if self._invert_iq[2] != enable:
                    val = self._reg_read(0x0736)
                    self._reg_write(0x0736, val & ~4 if enable else val | 4)
                    self._invert_iq[2] = enable

        return SX1262(spi=spi, cs=cs, busy=_pin(machine, pins["busy"]), dio1=_pin(machine, pins["dio1"]),
                      reset=_pin(machine, pins["reset"]), dio2_rf_sw=radio.get("dio2_rf_sw", True),
                      dio3_tcxo_millivolts=radio.get("tcxo_mv"), lora_cfg=lora_cfg)
    from fp.hal.board import BoardError
    raise BoardError("radio chip %r not supported" % chip)


def make_sensor(machine, profile):
    # The first sensor of the profile's "sensors" this HAL has a driver for (fp/sensors/),
    # on its bus: I2C (profile "i2c") for SHT3x and BME280, 1-Wire on the sensor's "pin"
    # (MicroPython's onewire module) for the DS18B20. None when there is none.
    i2c_cfg = profile.get("i2c")
    for s in profile.get("sensors") or ():
        kind = s.get("type")
        if kind in ("sht31", "sht30", "bme280") and i2c_cfg:
            i2c = machine.I2C(i2c_cfg["id"], sda=machine.Pin(i2c_cfg["sda"]), scl=machine.Pin(i2c_cfg["scl"]),
                              freq=i2c_cfg.get("freq", 100000))
            if kind == "bme280":
                from fp.sensors.bme280 import BME280
                return BME280(i2c, s.get("address", 0x76))
            from fp.sensors.sht3x import SHT3x
            return SHT3x(i2c, s.get("address", 0x44))
        if kind == "ds18b20":
            import onewire

            from fp.sensors.ds18b20 import DS18B20
            rom = bytes.fromhex(s["rom"]) if s.get("rom") else None
            return DS18B20(onewire.OneWire(machine.Pin(s["pin"])), rom)
    return None


_DEEP_MIN_MS = 5000  # shorter waits light-sleep: a boot costs about a second awake


class McuBoard:
    def __init__(self, machine, profile, cfg, clock):
        self.machine = machine
        self.name = profile["name"]
        profile.pop("power", None)  # the virtual board's power model only (fp/power.py): not kept in RAM
        self.profile = profile
        self.clock = clock or Clock()
        self.modem = None
        self.uart = None
        self.outputs = {}
        self.output_state = {}
        for o in profile.get("outputs") or ():
            pin = machine.Pin(o["pin"], machine.Pin.OUT, value=0)
            self.output_state[o["index"]] = 0
            self.outputs[o["index"]] = self._setter(o["index"], pin)
        led = profile.get("led")
        self._led = machine.Pin(led["pin"], machine.Pin.OUT) if led else None
        self._led_high = led.get("active_high", True) if led else True
        self._sensor = make_sensor(machine, profile)
        bat = profile.get("battery")
        has_adc = bat and bat.get("adc_pin") is not None
        self._adc = machine.ADC(machine.Pin(bat["adc_pin"])) if has_adc else None
        self._divider = bat.get("divider", 2.0) if bat else 1.0
        self._bat_ctrl = _pin(machine, bat.get("enable_pin"), machine.Pin.OUT, value=0) if bat else None
        self._bat_ctrl_on = bat.get("enable_level", 0) if bat else 0
        self.sleeps = cfg.get("sleep", True) and cfg.get("role", "node") == "node"
        # ESP32/ESP32-S3 deep-sleep (a boot on waking; what must survive is packed by
        # hal.keep into RTC memory, fp/resume.py); the RP2040 light-sleeps (RAM kept).
        self.sleep_kind = "light" if profile.get("mcu") == "rp2040" else "deep"
        self.keep = None
        self.resumed = None  # the RTC record, after a deep-sleep wake only
        if self.sleep_kind == "deep" and hasattr(machine, "RTC"):
            self._rtc = machine.RTC()
            if machine.reset_cause() == machine.DEEPSLEEP_RESET:
                self.resumed = bytes(self._rtc.memory())
            self._rtc.memory(b"")  # taken once: never reused after a later crash or reset
        self.power = None  # no model on a board: its current is measured, not computed
        self.wdt_ms, self.wdt_warning = wdt.watchdog_ms(profile, cfg)
        self.wdt = machine.WDT(timeout=self.wdt_ms)

    def _setter(self, idx, pin):
        def set_output(value):
            pin.value(1 if value else 0)
            self.output_state[idx] = 1 if value else 0
        return set_output

    def read_climate(self):
        if self._sensor is None:
            return None, None
        try:
            return self._sensor.read()
        except OSError:
            # missing, not answering, or its data failed its CRC: the reading goes without it
            return None, None

    def battery_v(self):
        if self._adc is None:
            return None
        if self._bat_ctrl is not None:
            self._bat_ctrl.value(self._bat_ctrl_on)
        uv = self._adc.read_uv() if hasattr(self._adc, "read_uv") else self._adc.read_u16() * 3300000 // 65535
        if self._bat_ctrl is not None:
            self._bat_ctrl.value(1 - self._bat_ctrl_on)
        return uv * self._divider / 1000000

    def led(self, on):
        if self._led is not None:
            self._led.value(1 if bool(on) == self._led_high else 0)

    async def sleep_until(self, deadline_ms, beat=None, slice_ms=10000):
        # The node's "until when". machine.lightsleep keeps RAM and the asyncio state:
        # the slice returns into the loop, where the supervisor feeds the watchdog, so
        # a slice is at most a quarter of the watchdog (slice_ms). Short waits (< 20 ms)
        # are not worth the clock switch and are slept awake.
        import asyncio
        while True:
            left = deadline_ms - self.clock.ms()
            if left <= 0:
                return
            if beat:
                beat()
            if self.sleeps and self.keep is not None and left >= _DEEP_MIN_MS:
                # Deep sleep: the radio is asleep already (the node put it there after its
                # window); the record goes to RTC memory, then the chip sleeps and boots again.
                self._rtc.memory(self.keep(deadline_ms))
                self.machine.deepsleep(left)
            step = min(left, slice_ms) if slice_ms > 0 else left
            if self.sleeps and step >= 20:
                self.machine.lightsleep(step)
                await asyncio.sleep_ms(0)
            else:
                await self.clock.sleep_ms(step)

    def heap_free(self):
        return gc.mem_free()

    def reset(self):
        self.machine.reset()

    def close(self):
        pass


def make(profile, cfg, clock=None, machine=None):
    # machine: the port's module, or a stand-in with the same classes (tests on the unix port)
    if machine is None:
        import machine
    from fp.region import region_params
    b = McuBoard(machine, profile, cfg, clock)
    _, sf, bw, _ = region_params(cfg["region"], cfg["dr"])
    from fp.hal.board import lora_cfg
    b.modem = make_modem(machine, profile, lora_cfg(profile, sf, bw))
    u = profile.get("uart")
    if cfg["role"] == "bridge" and u:
        if u.get("id") == 0 and u.get("detach_repl"):
            import os
            if hasattr(os, "dupterm"):
                os.dupterm(None, 0)  # the link takes UART0 from the REPL
        b.uart = machine.UART(u["id"], baudrate=u.get("baudrate", 115200), tx=u["tx"], rx=u["rx"],
                              timeout=0, rxbuf=1024)
    return b
