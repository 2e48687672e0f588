# The radio of a virtual module (unix port only): micropython-lib's lora
# driver, unchanged, built by the same fp/hal/mcu.make_modem the boards use,
# over an emulated SX1276 or SX1262 wired as the board profile says (its SPI
# bus and pins), on the loopback air.
#
# VirtualModem is what the roles get as hal.modem: the driver, plus the one
# thing the unix port needs on top. The roles give receive timeouts in the
# clock's virtual milliseconds, the driver counts them in real ticks_ms; with
# time_scale S a window of T virtual ms is T/S real ms. So the driver gets the
# timeout in chip time (the emulated chip runs on the module's clock, so its
# hardware timeout lands right), and a watchdog calls the driver's standby()
# (its documented way to end a receive) once T/S real ms have passed, unless
# a packet is being received then, as a chip in RX single mode would finish it,
# or one received is waiting for the driver to read it.
import asyncio

from fp.hal import airwire
from fp.hal.emu import bus

SX127X = ("sx1276", "sx1277", "sx1278", "sx1279", "rfm95w")
SX126X = ("sx1261", "sx1262", "sx1268")
_MAX_RX_MS = 262000  # the longest SX126x SetRx timeout (24 bits of 15.625 us)


def make_chip(profile, air, scale=1, trace=None):
    # (chip, Machine) for the profile's radio, wired to its pins
    radio = profile["radio"]
    pins = radio["pins"]
    spi = radio["spi"]
    name = radio["chip"]
    if name in SX127X:
        from fp.hal.emu.sx1276 import SX1276
        chip = SX1276(air, scale, pa_pin=radio.get("tx_ant"), trace=trace)
        wires = {"cs": "NSS", "reset": "NRESET", "dio0": "DIO0", "dio1": "DIO1"}
        max_hz = 10000000  # DS 2.5.6: FSCK max 10 MHz
    elif name in SX126X:
        from fp.hal.emu.sx1262 import SX1262
        chip = SX1262(air, scale, trace=trace)
        wires = {"cs": "NSS", "reset": "NRESET", "busy": "BUSY", "dio1": "DIO1"}
        max_hz = 16000000  # SX1261/2 DS 8.3: SPI up to 16 MHz
    else:
        raise ValueError("no emulated radio for chip %r" % name)
    lines = {}
    for role, line in wires.items():
        if pins.get(role) is not None:
            lines[pins[role]] = chip.lines[line]
    bus.install()
    return chip, bus.Machine(chip, lines, (spi["id"], spi["sck"], spi["mosi"], spi["miso"]), max_hz)


def make_modem(profile, clock, lora_cfg, air_cfg):
    from fp.hal import mcu
    air = airwire.Air(air_cfg.get("port", 0), air_cfg.get("peers", ()), air_cfg.get("loss", 0.0),
                      air_cfg.get("rssi", -90), air_cfg.get("snr", 7.5), air_cfg.get("seed"))
    scale = getattr(clock, "scale", 1) or 1
    chip, machine = make_chip(profile, air, scale)
    chip.start()
    try:
        drv = mcu.make_modem(machine, profile, lora_cfg)
    except Exception:
        chip.close()
        raise
    return VirtualModem(drv, chip, clock)


class VirtualModem:
    def __init__(self, drv, chip, clock):
        self.drv = drv
        self.chip = chip
        self.clock = clock
        self.scale = getattr(clock, "scale", 1) or 1
        self.counters = chip.counters

    def configure(self, lora_cfg):
        self.drv.configure(lora_cfg)

    def get_time_on_air_us(self, payload_len):
        return self.drv.get_time_on_air_us(payload_len)

    async def send(self, packet, tx_at_ms=None):
        return await self.drv.send(packet, tx_at_ms)

    async def recv(self, timeout_ms=None, rx_length=0xFF, rx_packet=None):
        if timeout_ms is None or self.scale == 1:
            return await self.drv.recv(timeout_ms, rx_length, rx_packet)
        stop = asyncio.create_task(self._stop_after(self.clock.real_ms(timeout_ms)))
        try:
            return await self.drv.recv(min(int(timeout_ms), _MAX_RX_MS), rx_length, rx_packet)
        finally:
            stop.cancel()

    async def _stop_after(self, real_ms):
        await asyncio.sleep_ms(real_ms)
        # a packet being received is finished, and one received is left to the driver to read
        # (it cancels this task when its recv returns): a standby now would drop it
        spins = 0
        while self.chip.receiving() or (self.chip.rx_done() and spins < 100):
            spins += 1
            await asyncio.sleep_ms(1)
        self.drv.standby()

    def standby(self):
        self.drv.standby()

    def sleep(self):
        self.drv.sleep()

    def state_ms(self):
        return self.chip.state_ms()

    def close(self):
        try:
            self.drv.standby()
        except Exception:  # a chip in a bad state must not stop the restart
            pass
        self.chip.close()
