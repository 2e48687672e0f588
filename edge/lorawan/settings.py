"""The ``[lorawan]`` configuration section: the edge as network and join server for its nodes,
declared on edge.config.schema (every key in docs/config.md; a bad value names ``lorawan.<key>``
and the fix)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.config.schema import build, setting


def _eui(value: str) -> str | None:
    ok = len(value) == 16 and all(c in "0123456789abcdef" for c in value)
    return None if ok else "must be 16 lower-case hex digits"


@dataclass(frozen=True)
class LoRaWANSettings:
    net_id: int = setting(
        0x000000, doc="NetID (24 bits); its low 7 bits prefix every DevAddr given out", lo=0, hi=0xFFFFFF
    )
    join_eui: str = setting(
        "0000000000000000",
        doc="The JoinEUI of devices registered without one",
        check=_eui,
        example="70b3d57ed00000dc",
    )
    rx1_delay_s: int = setting(
        1, doc="RECEIVE_DELAY1 announced in the join accept (RX2 one second later)", unit="s", lo=1, hi=15
    )
    rx1_dr_offset: int = setting(
        0, doc="RX1DROffset announced in the join accept: RX1's data rate below the uplink's", lo=0, hi=7
    )
    rx2_dr: int = setting(
        0,
        doc="RX2 data rate announced in the join accept; the region's default is EU868 0, US915 8, AS923 2",
        lo=0,
        hi=15,
    )
    accept_v1: bool = setting(
        False,
        doc="Fieldpost radio v1 frames from radio nodes that never joined (old firmware); a bridge's"
        " own readings and UDP/CoAP devices' frames are taken either way",
    )
    quarantine_max: int = setting(
        1000, doc="Rows in quarantine; the oldest is evicted beyond", lo=1, hi=1_000_000
    )
    quarantine_per_min: float = setting(
        60.0, doc="New quarantine rows per minute per source (bridge)", lo=0.001, hi=1e6
    )
    mic_failures_per_min: float = setting(
        60.0, doc="MIC checks that may fail per minute per source", lo=0.001, hi=1e6
    )
    log_per_min: float = setting(
        20.0, doc="Rejection log lines per minute per kind; the rest are counted", lo=0.001, hi=1e6
    )


def parse(section: Mapping[str, Any] | None) -> LoRaWANSettings:
    """``LoRaWANSettings`` from a ``[lorawan]`` table (None or {}: all defaults); a SettingError
    (a ConfigError) names the key and the fix."""
    return build(LoRaWANSettings, section or {}, "lorawan")
