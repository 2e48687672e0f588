# Maxim DS18B20 on a 1-Wire bus, through MicroPython's `onewire.OneWire` (the board's own
# driver; passed in): Convert T (0x44), then Read Scratchpad (0xBE) of 9 bytes whose last is
# the Dallas CRC-8 of the first 8 (datasheet 19-7487, "CRC generation": x^8 + x^5 + x^4 + 1).
# A scratchpad that fails the CRC, or still holds the power-on value 85 °C (0x0550: the
# conversion did not run), is refused. Temperature: 12-bit two's complement, 1/16 °C.
# read() -> (°C, None): the DS18B20 has no humidity.
import time

_SKIP_ROM = 0xCC
_CONVERT = 0x44
_READ_SCRATCH = 0xBE
_POWER_ON = 0x0550


def crc8(data, n):
    crc = 0
    for i in range(n):
        b = data[i]
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C  # 0x31 reflected
            b >>= 1
    return crc


class DS18B20:
    def __init__(self, ow, rom=None, sleep_ms=time.sleep_ms):
        self.ow = ow
        self.rom = rom  # None: the only device on the bus (Skip ROM)
        self.sleep_ms = sleep_ms
        self._buf = bytearray(9)

    def _address(self):
        if not self.ow.reset():
            raise OSError("DS18B20: no presence pulse")
        if self.rom is None:
            self.ow.writebyte(_SKIP_ROM)
        else:
            self.ow.select_rom(self.rom)

    def read(self):
        self._address()
        self.ow.writebyte(_CONVERT)
        self.sleep_ms(750)  # 12-bit conversion, tCONV max (table 2)
        self._address()
        self.ow.writebyte(_READ_SCRATCH)
        self.ow.readinto(self._buf)
        b = self._buf
        if crc8(b, 8) != b[8]:
            raise OSError("DS18B20 CRC mismatch")
        raw = b[0] | (b[1] << 8)
        if raw == _POWER_ON:
            raise OSError("DS18B20: power-on value, no conversion")
        if raw & 0x8000:
            raw -= 0x10000
        return raw / 16, None
