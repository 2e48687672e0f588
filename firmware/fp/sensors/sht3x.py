# Sensirion SHT30/31 over I2C: single shot, high repeatability, clock stretching off
# (datasheet "SHT3x-DIS" v6, 4.3). Each 16-bit word comes with a CRC-8 (4.12: polynomial
# 0x31, init 0xFF; CRC(0xBEEF) = 0x92): a word that fails it is refused, never used.
import time


def crc8(data, start=0, end=2):
    crc = 0xFF
    for i in range(start, end):
        crc ^= data[i]
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


class SHT3x:
    def __init__(self, i2c, addr=0x44, sleep_ms=time.sleep_ms):
        self.i2c = i2c
        self.addr = addr
        self.sleep_ms = sleep_ms
        self._buf = bytearray(6)

    def read(self):
        self.i2c.writeto(self.addr, b"\x24\x00")
        self.sleep_ms(16)  # 15.5 ms max at high repeatability (table 4)
        self.i2c.readfrom_into(self.addr, self._buf)
        b = self._buf
        if crc8(b, 0, 2) != b[2] or crc8(b, 3, 5) != b[5]:
            raise OSError("SHT3x CRC mismatch")
        t_raw = (b[0] << 8) | b[1]
        h_raw = (b[3] << 8) | b[4]
        return -45 + 175 * t_raw / 65535, 100 * h_raw / 65535
