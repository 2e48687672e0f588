# Bosch BME280 over I2C (datasheet BST-BME280-DS002): forced mode, x1 oversampling of
# temperature, pressure and humidity; the integer compensation formulas of section 4.2.3
# (32-bit temperature and humidity, 64-bit pressure) with the chip's own trimming values.
# read() -> (°C, %RH); the pressure (Pa) is kept in .pressure_pa.
import struct
import time

_CHIP_ID = 0x60


class BME280:
    def __init__(self, i2c, addr=0x76, sleep_ms=time.sleep_ms):
        self.i2c = i2c
        self.addr = addr
        self.sleep_ms = sleep_ms
        self.pressure_pa = None
        self._cal = None
        self._buf = bytearray(8)

    def _calibrate(self):
        chip = self.i2c.readfrom_mem(self.addr, 0xD0, 1)[0]
        if chip != _CHIP_ID:
            raise OSError("BME280: chip id 0x%02x, want 0x60" % chip)
        tp = self.i2c.readfrom_mem(self.addr, 0x88, 24)
        h1 = self.i2c.readfrom_mem(self.addr, 0xA1, 1)[0]
        e = self.i2c.readfrom_mem(self.addr, 0xE1, 7)
        h4 = (e[3] << 4) | (e[4] & 0x0F)
        h5 = (e[5] << 4) | (e[4] >> 4)
        self._cal = struct.unpack("<HhhHhhhhhhhh", tp) + (
            h1,
            struct.unpack("<h", e[0:2])[0],
            e[2],
            h4 - 4096 if h4 & 0x800 else h4,
            h5 - 4096 if h5 & 0x800 else h5,
            e[6] - 256 if e[6] & 0x80 else e[6],
        )

    def read(self):
        if self._cal is None:
            self._calibrate()
        self.i2c.writeto_mem(self.addr, 0xF2, b"\x01")  # ctrl_hum: x1 (applies at the next ctrl_meas)
        self.i2c.writeto_mem(self.addr, 0xF4, b"\x25")  # ctrl_meas: T x1, P x1, forced
        self.sleep_ms(10)  # 9.3 ms max at x1 x1 x1 (appendix B)
        d = self.i2c.readfrom_mem(self.addr, 0xF7, 8)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        t_fine, temp = compensate_t(self._cal, adc_t)
        self.pressure_pa = compensate_p(self._cal, t_fine, adc_p) / 256
        return temp / 100, compensate_h(self._cal, t_fine, adc_h) / 1024


def compensate_t(c, adc_t):
    # returns (t_fine, temperature in 0.01 °C)
    t1, t2, t3 = c[0], c[1], c[2]
    var1 = (((adc_t >> 3) - (t1 << 1)) * t2) >> 11
    var2 = (((((adc_t >> 4) - t1) * ((adc_t >> 4) - t1)) >> 12) * t3) >> 14
    t_fine = var1 + var2
    return t_fine, (t_fine * 5 + 128) >> 8


def compensate_p(c, t_fine, adc_p):
    # pressure in Pa as Q24.8 (divide by 256)
    p1, p2, p3, p4, p5, p6, p7, p8, p9 = c[3:12]
    var1 = t_fine - 128000
    var2 = var1 * var1 * p6
    var2 = var2 + ((var1 * p5) << 17)
    var2 = var2 + (p4 << 35)
    var1 = ((var1 * var1 * p3) >> 8) + ((var1 * p2) << 12)
    var1 = (((1 << 47) + var1) * p1) >> 33
    if var1 == 0:
        return 0  # avoid a division by zero (datasheet)
    p = 1048576 - adc_p
    p = (((p << 31) - var2) * 3125) // var1
    var1 = (p9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (p8 * p) >> 19
    return ((p + var1 + var2) >> 8) + (p7 << 4)


def compensate_h(c, t_fine, adc_h):
    # relative humidity in %RH as Q22.10 (divide by 1024)
    h1, h2, h3, h4, h5, h6 = c[12:18]
    v = t_fine - 76800
    v = ((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15) * (
        ((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2 + 8192) >> 14
    )
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4)
    v = 0 if v < 0 else v
    v = 419430400 if v > 419430400 else v
    return v >> 12
