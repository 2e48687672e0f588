# machine.Pin / machine.SPI stand-ins wired to an emulated radio chip (unix
# port only). The radio drivers and fp/hal/mcu.make_modem take the hardware
# objects passed in, so the unix HAL hands them a Machine whose pins and SPI
# bus are the board profile's, wired to the chip's NSS, NRESET, BUSY and DIO
# lines as on the board. micropython-lib's drivers also do `from machine import
# Pin` for its constants; install() puts a `machine` module carrying these
# classes (plus the unix port's own machine functions) into sys.modules.
#
# Chip lines seen by the host:
#   input lines (host drives):  chip.line_in(name, level)   NSS, NRESET
#   output lines (chip drives): chip.line_level(name)       BUSY, DIO0, DIO1
# A rising/falling edge of a chip output calls Line.edge(), which runs the
# pin's irq handler through micropython.schedule, as a soft IRQ would.
import micropython

_MSB = 0


class Line:
    # One wire between a board pin and the chip.
    def __init__(self, chip, name, output):
        self.chip = chip
        self.name = name
        self.output = output  # True: the chip drives it
        self.level = 0
        self.handler = None
        self.trigger = 0
        self.pin = None

    def edge(self, level):
        # the chip moved this output line
        if level == self.level:
            return
        self.level = level
        h = self.handler
        if h is None:
            return
        if (level and self.trigger & Pin.IRQ_RISING) or (not level and self.trigger & Pin.IRQ_FALLING):
            try:
                micropython.schedule(h, self.pin)
            except RuntimeError:  # schedule queue full: run it now
                h(self.pin)


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None, line=None):
        self.id = id
        self.mode = mode
        self.line = line
        self._v = line.level if line is not None else 0
        if value is not None:
            self.value(value)

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        ln = self.line
        if v is None:
            if ln is not None:
                if ln.output:
                    ln.chip.poll()
                return ln.level
            return self._v
        v = 1 if v else 0
        self._v = v
        if ln is not None:
            if ln.output:
                ln.chip.bad("host drives %s, a chip output (pin %s)" % (ln.name, self.id))
            elif v != ln.level:
                ln.level = v
                ln.chip.line_in(ln.name, v)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, hard=False):
        ln = self.line
        if ln is None or not ln.output:
            return None
        ln.handler = handler
        ln.trigger = trigger
        ln.pin = self
        return None

    def __repr__(self):
        return "Pin(%s%s)" % (self.id, ", " + self.line.name if self.line else "")


class SPI:
    # Mode 0, MSB first: what both chips speak (SX1276 DS 2.2, SX1261/2 DS 8.3).
    MSB = _MSB

    def __init__(self, id, baudrate=1000000, polarity=0, phase=0, bits=8, firstbit=_MSB, sck=None, mosi=None,
                 miso=None, chip=None, max_hz=10000000):
        self.id = id
        self.chip = chip
        self._one = bytearray(1)
        if chip is not None:
            if polarity or phase:
                chip.bad("SPI mode %d,%d: the chip samples in mode 0,0" % (polarity, phase))
                self.chip = None  # every byte would be garbled: nothing reaches the chip
            elif baudrate > max_hz:
                chip.bad("SPI at %d Hz, above the chip's %d Hz" % (baudrate, max_hz))
            elif bits != 8 or firstbit != _MSB:
                chip.bad("SPI %d bits, firstbit %d: the chip takes 8-bit words, MSB first" % (bits, firstbit))
                self.chip = None

    def _xfer(self, out, into):
        if self.chip is None:
            if into is not None:
                for i in range(len(into)):
                    into[i] = 0xFF  # MISO floats high: nothing answers
            return
        self.chip.spi(out, into)

    def write(self, buf):
        self._xfer(buf, None)

    def readinto(self, buf, write=0x00):
        out = bytes((write,)) * len(buf)
        self._xfer(out, buf)

    def read(self, n, write=0x00):
        buf = bytearray(n)
        self.readinto(buf, write)
        return bytes(buf)

    def write_readinto(self, out, into):
        if len(out) != len(into):
            raise ValueError("buffers must be the same length")
        self._xfer(bytes(out), into)

    def deinit(self):
        pass


class Machine:
    # What fp/hal/mcu.make_modem gets as `machine` on the unix port: Pin()
    # and SPI() of the board's radio wiring.
    #   lines: {pin id: Line}; spi: (bus id, sck, mosi, miso) of the radio bus
    def __init__(self, chip, lines, spi, max_hz):
        self.chip = chip
        self.Pin = _PinFactory(lines)
        self.SPI = _SpiFactory(chip, spi, max_hz)


class _PinFactory:
    IN = Pin.IN
    OUT = Pin.OUT
    OPEN_DRAIN = Pin.OPEN_DRAIN
    PULL_UP = Pin.PULL_UP
    PULL_DOWN = Pin.PULL_DOWN
    IRQ_RISING = Pin.IRQ_RISING
    IRQ_FALLING = Pin.IRQ_FALLING

    def __init__(self, lines):
        self.lines = lines

    def __call__(self, id, mode=-1, pull=-1, value=None):
        return Pin(id, mode, pull, value, line=self.lines.get(id))


class _SpiFactory:
    MSB = _MSB

    def __init__(self, chip, bus, max_hz):
        self.chip = chip
        self.bus = bus
        self.max_hz = max_hz

    def __call__(self, id, baudrate=1000000, polarity=0, phase=0, bits=8, firstbit=_MSB, sck=None, mosi=None,
                 miso=None):
        pins = tuple(p.id if isinstance(p, Pin) else p for p in (sck, mosi, miso))
        chip = self.chip
        if (id,) + pins != self.bus:
            chip.bad("SPI(%r, sck/mosi/miso=%r) is not the radio's bus %r" % (id, pins, self.bus))
            chip = None
        return SPI(id, baudrate, polarity, phase, bits, firstbit, sck, mosi, miso, chip=chip, max_hz=self.max_hz)


class _MachineModule:
    pass


def install():
    # `machine` for the lora drivers' `from machine import Pin`: the unix
    # port's own machine module plus Pin and SPI. Idempotent.
    import sys
    have = sys.modules.get("machine")
    if have is not None and getattr(have, "_fp_emulated", False):
        return have
    import machine as builtin
    mod = _MachineModule
    for name in dir(builtin):
        if not name.startswith("__"):
            setattr(mod, name, getattr(builtin, name))
    mod.Pin = Pin
    mod.SPI = SPI
    mod._fp_emulated = True
    sys.modules["machine"] = mod
    return mod
