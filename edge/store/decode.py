"""Decoded values, derived from a stored reading's raw payload when someone reads it.

Nothing decoded is stored: the panel, export, sync and rules call :func:`decode_payload`
(sensor readings through the device's codec, module status and downlink results by port).
Keeping only the raw bytes makes each reading small and means a fixed or new codec applies
to the readings already stored.
"""

from __future__ import annotations

import json
from typing import Any

from edge.codecs import CodecRunner
from edge.radio import (
    PORT_DOWNLINK_RESULT,
    PORT_READINGS,
    PORT_STATUS,
    RadioFormatError,
    parse_downlink_result,
)

Values = list[dict[str, Any]]

# Port-3 status keys are one letter on the air (firmware budget); their names and units.
STATUS_KEYS = {
    "b": ("battery", "V"),
    "u": ("uptime", "s"),
    "j": ("journal", ""),
    "a": ("airtime", "s"),
    "d": ("deferred", ""),
    "r": ("rejects", ""),
    "m": ("bad_mic", ""),
    "x": ("dropped", ""),
    "f": ("given_up", ""),  # own frames the module gave up after repeated refusals (fp/refusal.py)
    "i": ("interval", "s"),  # reading interval a node spaced out to fit its duty cycle (fp/roles/node.py)
    "e": ("energy", "mAh/d"),  # a virtual module's power model (firmware/fp/power.py)
    "c": ("battery_capacity", "mAh"),  # the cell in its board profile
}
BATTERY_NAMES = ("battery", "voltage")


def parse_status(raw: bytes) -> dict[str, Any]:
    """A module's port-3 status payload (a JSON object); raises ValueError naming what is wrong."""
    try:
        status = json.loads(bytes(raw).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"status: {exc}") from None
    if not isinstance(status, dict):
        raise ValueError("status: not a JSON object")
    return status


def status_values(status: dict[str, Any]) -> Values:
    values = []
    for key, value in status.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            name, unit = STATUS_KEYS.get(key, (key, ""))
            values.append({"channel": 0, "name": name, "value": value, "unit": unit})
    life = battery_life_days(status)
    if life is not None:
        values.append({"channel": 0, "name": "battery_life", "value": life, "unit": "d"})
    return values


def battery_life_days(status: dict[str, Any]) -> float | None:
    """Projected battery life: the cell's capacity over the reported mAh/day (None without both)."""
    energy, capacity = status.get("e"), status.get("c")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (energy, capacity))
    if not numbers or energy <= 0 or capacity <= 0:
        return None
    return round(capacity / energy, 1)


def decode_payload(
    codecs: CodecRunner, codec: str, port: int, raw: bytes
) -> tuple[Values | None, str | None]:
    """(values, None), or (None, what went wrong). Never raises."""
    if port == PORT_READINGS:
        return codecs.decode(codec, port, raw)
    if port == PORT_STATUS:
        try:
            return status_values(parse_status(raw)), None
        except ValueError as exc:
            return None, str(exc)
    if port == PORT_DOWNLINK_RESULT:
        try:
            result = parse_downlink_result(raw)
        except RadioFormatError as exc:
            return None, f"downlink result: {exc}"
        return [
            {"channel": 0, "name": "downlink_id", "value": result.dl_id, "unit": ""},
            {"channel": 0, "name": "downlink_result", "value": result.result, "unit": ""},
        ], None
    return None, f"no decoder for port {port}"


_json_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def decode_payload_json(
    codecs: CodecRunner, codec: str, port: int, raw: bytes
) -> tuple[str | None, str | None]:
    """:func:`decode_payload` with the values as compact JSON text (what sync sends)."""
    if port == PORT_READINGS:
        return codecs.decode_json(codec, port, raw)
    values, error = decode_payload(codecs, codec, port, raw)
    return (None, error) if values is None else (_json_text(values), None)


def battery_of(values: Values | None) -> float | None:
    """The battery voltage among decoded values (LPP names it "battery" or "voltage", in V)."""
    for v in values or ():
        if v.get("name") in BATTERY_NAMES and v.get("unit") == "V":
            value = v.get("value")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
    return None
