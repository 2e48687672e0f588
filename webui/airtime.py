"""LoRa time on air and duty-cycle use, for the device page. Pure functions.

Semtech AN1200.13 (SX1276 datasheet 4.1.1.7):
  Tsym = 2^SF / BW; preamble lasts (n_preamble + 4.25) Tsym;
  payload symbols = 8 + max(ceil((8 PL - 4 SF + 28 + 16 CRC - 20 IH) / (4 (SF - 2 DE))) (CR + 4), 0)
with DE (low data rate optimisation) on when a symbol lasts 16 ms or more.
"""

from __future__ import annotations

import math

from edge.radio import OVERHEAD as FRAME_OVERHEAD  # kind, id, fcnt, port, MIC around the payload


def time_on_air_s(
    phy_payload_len: int,
    *,
    sf: int = 12,
    bw_hz: int = 125_000,
    coding_rate: int = 1,  # 1..4 for 4/5..4/8
    preamble: int = 8,
    explicit_header: bool = True,
    crc: bool = True,
) -> float:
    t_sym = (2**sf) / bw_hz
    de = 1 if t_sym >= 0.016 else 0
    ih = 0 if explicit_header else 1
    numerator = 8 * phy_payload_len - 4 * sf + 28 + (16 if crc else 0) - 20 * ih
    payload_symbols = 8 + max(math.ceil(numerator / (4 * (sf - 2 * de))) * (coding_rate + 4), 0)
    return (preamble + 4.25) * t_sym + payload_symbols * t_sym


def duty_cycle_use(payload_lengths: list[int], *, window_s: float, sf: int, bw_hz: int) -> dict[str, float]:
    """Airtime of uplinks with these application payload sizes within ``window_s``, and its fraction."""
    airtime = sum(time_on_air_s(n + FRAME_OVERHEAD, sf=sf, bw_hz=bw_hz) for n in payload_lengths)
    return {
        "airtime_s": airtime,
        "fraction": airtime / window_s if window_s > 0 else 0.0,
        "frames": len(payload_lengths),
    }
