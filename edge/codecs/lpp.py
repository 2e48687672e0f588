"""Cayenne Low Power Payload: the default codec. Pure; every value carries its unit.

Each item is ``channel u8, type u8, data``; multi-byte values are big-endian. The
table below is the common LPP v1 set plus the extended types most devices use.
"""

from __future__ import annotations

import functools
import json
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

    @property
    def scales(self) -> tuple[float, ...]:
        """One scale per field (GPS has three; every other type one for all its fields)."""
        return self.scale if isinstance(self.scale, tuple) else (self.scale,)


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


def _decimals(scale: float) -> int:
    # Round to the type's resolution so 215 * 0.1 reads 21.5, not 21.500000000000004.
    return max(0, len(repr(scale).split(".")[-1]))


@dataclass(frozen=True)
class _Field:
    name: str  # the value's name: the type's, or "<type>_<field>" for multi-value types
    unit: str
    scale: float
    decimals: int | None  # None: an integer value (scale 1)


def _fields(kind: LppType) -> tuple[_Field, ...]:
    if kind.code == 136:
        return tuple(
            _Field(name, unit, scale, _decimals(scale))
            for name, scale, unit in zip(kind.fields, kind.scales, GPS_UNITS, strict=True)
        )
    names = [f"{kind.name}_{f}" for f in kind.fields] or [kind.name]
    scale = float(kind.scale)  # type: ignore[arg-type]
    return tuple(_Field(n, kind.unit, scale, None if scale == 1 else _decimals(scale)) for n in names)


def _unpacker(kind: LppType):
    if kind.code == 136:
        return lambda data, at: (
            _int24(data[at : at + 3]),
            _int24(data[at + 3 : at + 6]),
            _int24(data[at + 6 : at + 9]),
        )
    return struct.Struct(kind.fmt).unpack_from


# code -> (size, unpack(data, offset) -> numbers, fields): built once, used for every item decoded.
_PLAN = {code: (t.size, _unpacker(t), _fields(t)) for code, t in TYPES.items()}


def items(
    payload: bytes, analog_channels: dict[int, tuple[str, str]] | None = None
) -> list[tuple[int, str, int | float, str]]:
    """LPP bytes -> [(channel, name, value, unit), ...], the one parser both encodings below use.

    Raises LppError naming the first problem.
    """
    payload = bytes(payload)
    out = []
    i, end = 0, len(payload)
    while i < end:
        if i + 2 > end:
            raise LppError(f"truncated item header at byte {i}")
        channel, code = payload[i], payload[i + 1]
        plan = _PLAN.get(code)
        if plan is None:
            raise LppError(f"unknown LPP type {code} on channel {channel} at byte {i}")
        size, unpack, fields = plan
        if i + 2 + size > end:
            raise LppError(f"{TYPES[code].name} on channel {channel} needs {size} bytes, {end - i - 2} left")
        numbers = unpack(payload, i + 2)
        i += 2 + size
        for field, number in zip(fields, numbers, strict=True):
            if field.decimals is None:
                value: int | float = int(number)
            else:
                value = round(number * field.scale, field.decimals)
            name, unit = field.name, field.unit
            if code == 2 and analog_channels and channel in analog_channels:
                name, unit = analog_channels[channel]
            out.append((channel, name, value, unit))
    return out


def decode(
    payload: bytes, *, analog_channels: dict[int, tuple[str, str]] | None = None
) -> list[dict[str, Any]]:
    """LPP bytes -> [{"channel", "name", "value", "unit"}, ...]. Raises LppError.

    ``analog_channels`` names analog inputs by channel: {channel: (name, unit)}.
    """
    return [
        {"channel": c, "name": n, "value": v, "unit": u} for c, n, v, u in items(payload, analog_channels)
    ]


_json_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


@functools.lru_cache(maxsize=4096)
def _json_parts(channel: int, name: str, unit: str) -> tuple[str, str]:
    # The text around a value: a site has a few dozen (channel, name, unit), so this is built once each.
    return (
        f'{{"channel":{channel},"name":{_json_text(name)},"value":',
        f',"unit":{_json_text(unit)}}}',
    )


def decode_json(payload: bytes, *, analog_channels: dict[int, tuple[str, str]] | None = None) -> str:
    """The same values as :func:`decode`, as the JSON text ``json.dumps(decode(...))`` would give
    (compact, UTF-8): what sync sends, built without a dict per value."""
    parts = []
    for c, n, v, u in items(payload, analog_channels):
        head, tail = _json_parts(c, n, u)
        parts.append(head + repr(v) + tail)
    return "[" + ",".join(parts) + "]"


def encode(items: list[tuple[int, str, Any]]) -> bytes:
    """(channel, type name, value) -> LPP bytes. For tests, tools and the CPython module peer."""
    by_name = {t.name: t for t in TYPES.values()}
    out = bytearray()
    for channel, name, value in items:
        kind = by_name[name]
        out += bytes([channel, kind.code])
        if kind.code == 136:
            for v, scale in zip(value, kind.scales, strict=True):
                out += round(v / scale).to_bytes(3, "big", signed=True)
        elif kind.fields:
            out += struct.pack(kind.fmt, *(round(v / kind.scale) for v in value))
        else:
            out += struct.pack(kind.fmt, round(value / kind.scale))
    return bytes(out)
