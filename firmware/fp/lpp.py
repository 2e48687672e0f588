# Cayenne LPP, the default readings codec (uplink port 1).
# Each value: channel u8, type u8, big-endian data. The standard reading
# (temperature, humidity, battery voltage) is 4 + 3 + 4 = 11 bytes, within the
# 12-byte Sigfox-class budget.
import struct

from micropython import const

ANALOG_INPUT = const(0x02)  # 0.01 signed
TEMPERATURE = const(0x67)  # 0.1 degC signed
HUMIDITY = const(0x68)  # 0.5 %RH unsigned

# Channels of the standard reading; the edge's device profile names them.
CH_TEMPERATURE = const(1)
CH_HUMIDITY = const(2)
CH_BATTERY = const(3)


def _clamp(v, lo, hi):
    return lo if v < lo else (min(v, hi))


def temperature(buf, ch, celsius):
    buf.append(ch)
    buf.append(TEMPERATURE)
    buf.extend(struct.pack(">h", _clamp(int(round(celsius * 10)), -32768, 32767)))


def humidity(buf, ch, percent):
    buf.append(ch)
    buf.append(HUMIDITY)
    buf.append(_clamp(int(round(percent * 2)), 0, 255))


def analog(buf, ch, value):
    buf.append(ch)
    buf.append(ANALOG_INPUT)
    buf.extend(struct.pack(">h", _clamp(int(round(value * 100)), -32768, 32767)))


def standard_reading(temp_c, rh, battery_v):
    # None for a sensor that failed: that value is left out, the rest still go.
    buf = bytearray()
    if temp_c is not None:
        temperature(buf, CH_TEMPERATURE, temp_c)
    if rh is not None:
        humidity(buf, CH_HUMIDITY, rh)
    if battery_v is not None:
        analog(buf, CH_BATTERY, battery_v)
    return bytes(buf)
