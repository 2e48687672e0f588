"""Cayenne Low Power Payload: the default codec. Pure; every value carries its unit.

Each item is ``channel u8, type u8, data``; multi-byte values are big-endian. The
table below is the common LPP v1 set plus the extended types most devices use.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LppType:
    code: int
    name: str
    size: int
    fmt: str  # struct format of the fields, big-endian
    scale: float | tuple[float, ...]
    unit: str
    fields: tuple[str, ...] = ()  # sub-names for multi-value types (x, y, z ...)


TYPES = {
    t.code: t
    for t in (
        LppType(0, "digital_input", 1, ">B", 1, ""),
        LppType(1, "digital_output", 1, ">B", 1, ""),
        LppType(2, "analog_input", 2, ">h", 0.01, ""),
        LppType(3, "analog_output", 2, ">h", 0.01, ""),
        LppType(100, "generic", 4, ">I", 1, ""),
        LppType(101, "illuminance", 2, ">H", 1, "lx"),
        LppType(102, "presence", 1, ">B", 1, ""),
        LppType(103, "temperature", 2, ">h", 0.1, "°C"),
        LppType(104, "humidity", 1, ">B", 0.5, "%"),
        LppType(113, "accelerometer", 6, ">hhh", 0.001, "g", ("x", "y", "z")),
        LppType(115, "barometer", 2, ">H", 0.1, "hPa"),
        LppType(116, "voltage", 2, ">H", 0.01, "V"),
        LppType(117, "current", 2, ">H", 0.001, "A"),
        LppType(118, "frequency", 4, ">I", 1, "Hz"),
        LppType(120, "percentage", 1, ">B", 1, "%"),
        LppType(121, "altitude", 2, ">h", 1, "m"),
        LppType(125, "concentration", 2, ">H", 1, "ppm"),
        LppType(128, "power", 2, ">H", 1, "W"),
        LppType(130, "distance", 4, ">I", 0.001, "m"),
        LppType(131, "energy", 4, ">I", 0.001, "kWh"),
        LppType(132, "direction", 2, ">H", 1, "°"),
        LppType(133, "unix_time", 4, ">I", 1, "s"),
        LppType(134, "gyrometer", 6, ">hhh", 0.01, "°/s", ("x", "y", "z")),
        LppType(136, "gps", 9, "", (0.0001, 0.0001, 0.01), "", ("latitude", "longitude", "altitude")),
        LppType(142, "switch", 1, ">B", 1, ""),
    )
}
GPS_UNITS = ("°", "°", "m")


class LppError(ValueError):
    """The payload is not valid Cayenne LPP."""


def _int24(b: bytes) -> int:
    return int.from_bytes(b, "big", signed=True)


# The standard Fieldpost reading (firmware/fp/lpp.py): an analog input on channel 3 is the
# battery voltage. LPP's analog type has no unit, so the profile names it.
FIELDPOST_ANALOG_CHANNELS = {3: ("battery", "V")}


def decode(
    payload: bytes, *, analog_channels: dict[int, tuple[str, str]] | None = None
) -> list[dict[str, Any]]:
    """LPP bytes -> [{"channel", "name", "value", "unit"}, ...]. Raises LppError.

    ``analog_channels`` names analog inputs by channel: {channel: (name, unit)}.
    """
    analog_channels = analog_channels or {}
    payload = bytes(payload)
    values: list[dict[str, Any]] = []
    i = 0
    while i < len(payload):
        if i + 2 > len(payload):
            raise LppError(f"truncated item header at byte {i}")
        channel, code = payload[i], payload[i + 1]
        kind = TYPES.get(code)
        if kind is None:
            raise LppError(f"unknown LPP type {code} on channel {channel} at byte {i}")
        data = payload[i + 2 : i + 2 + kind.size]
        if len(data) < kind.size:
            raise LppError(f"{kind.name} on channel {channel} needs {kind.size} bytes, {len(data)} left")
        i += 2 + kind.size
        if code == 136:
            raw = (_int24(data[0:3]), _int24(data[3:6]), _int24(data[6:9]))
            for name, number, scale, unit in zip(kind.fields, raw, kind.scale, GPS_UNITS, strict=True):
                values.append(_value(channel, name, number * scale, unit, scale))
        elif kind.fields:
            for name, number in zip(kind.fields, struct.unpack(kind.fmt, data), strict=True):
                values.append(
                    _value(channel, f"{kind.name}_{name}", number * kind.scale, kind.unit, kind.scale)
                )
        else:
            (number,) = struct.unpack(kind.fmt, data)
            name, unit = kind.name, kind.unit
            if code == 2 and channel in analog_channels:
                name, unit = analog_channels[channel]
            values.append(_value(channel, name, number * kind.scale, unit, kind.scale))
    return values


def _value(channel: int, name: str, value: float, unit: str, scale: float) -> dict[str, Any]:
    # Round to the type's resolution so 215 * 0.1 reads 21.5, not 21.500000000000004.
    if scale == 1:
        value = int(value)
    else:
        value = round(value, max(0, len(repr(scale).split(".")[-1])))
    return {"channel": channel, "name": name, "value": value, "unit": unit}


def encode(items: list[tuple[int, str, Any]]) -> bytes:
    """(channel, type name, value) -> LPP bytes. For tests, tools and the CPython module peer."""
    by_name = {t.name: t for t in TYPES.values()}
    out = bytearray()
    for channel, name, value in items:
        kind = by_name[name]
        out += bytes([channel, kind.code])
        if kind.code == 136:
            for v, scale in zip(value, kind.scale, strict=True):
                out += round(v / scale).to_bytes(3, "big", signed=True)
        elif kind.fields:
            out += struct.pack(kind.fmt, *(round(v / kind.scale) for v in value))
        else:
            out += struct.pack(kind.fmt, round(value / kind.scale))
    return bytes(out)
