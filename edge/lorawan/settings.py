"""The ``[lorawan]`` configuration section: the edge as network and join server for its nodes.

A section of its own (a frozen dataclass and its parse function), read from ``Config.extra``:
every bad value raises ConfigError naming ``lorawan.<key>``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.errors import ConfigError


@dataclass(frozen=True, slots=True)
class LoRaWANSettings:
    net_id: int = 0x000000  # NetID (24 bits); its low 7 bits prefix every DevAddr given out
    join_eui: str = "0000000000000000"  # the JoinEUI of devices registered without one
    rx1_delay_s: int = 1  # RECEIVE_DELAY1 announced in the join accept (RX2 one second later)
    accept_v1: bool = True  # Fieldpost radio v1 frames from devices that never joined
    quarantine_max: int = 1000  # rows in quarantine; the oldest is evicted beyond
    quarantine_per_min: float = 60.0  # new quarantine rows per minute per source (bridge)
    mic_failures_per_min: float = 60.0  # MIC checks that may fail per minute per source
    log_per_min: float = 20.0  # rejection log lines per minute per kind; the rest counted

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


_CHECKS: dict[str, tuple[type, Any, str]] = {
    "net_id": (int, lambda v: 0 <= v <= 0xFFFFFF, "must be 0 .. 0xFFFFFF"),
    "join_eui": (
        str,
        lambda v: len(v) == 16 and all(c in "0123456789abcdef" for c in v),
        "must be 16 lower-case hex digits",
    ),
    "rx1_delay_s": (int, lambda v: 1 <= v <= 15, "must be 1 .. 15 seconds"),
    "accept_v1": (bool, None, ""),
    "quarantine_max": (int, lambda v: 1 <= v <= 1_000_000, "must be 1 .. 1000000"),
    "quarantine_per_min": (float, lambda v: 0 < v <= 1e6, "must be > 0"),
    "mic_failures_per_min": (float, lambda v: 0 < v <= 1e6, "must be > 0"),
    "log_per_min": (float, lambda v: 0 < v <= 1e6, "must be > 0"),
}


def parse(section: Mapping[str, Any] | None) -> LoRaWANSettings:
    """``LoRaWANSettings`` from a ``[lorawan]`` table (None or {}: all defaults)."""
    if section is None:
        return LoRaWANSettings()
    if not isinstance(section, Mapping):
        raise ConfigError("[lorawan]: must be a table")
    values: dict[str, Any] = {}
    for key, value in section.items():
        if key not in _CHECKS:
            raise ConfigError(f"lorawan.{key}: unknown key (known: {', '.join(sorted(_CHECKS))})")
        kind, check, why = _CHECKS[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"lorawan.{key}: {value!r} is {type(value).__name__}, expected {kind.__name__}")
        if check is not None and not check(value):
            raise ConfigError(f"lorawan.{key}: {value!r} {why}")
        values[key] = value
    return LoRaWANSettings(**values)
