"""What an update over the air costs a node's battery, and the pace that keeps it within an
allowance per day (docs/updates.md "Energy"). Pure arithmetic on the board profile's datasheet
currents (``hardware/boards/*.json`` "power", the figures the virtual module's power model
uses, firmware/fp/power.py): no I/O.

A fragment exchange (edge/fuota/air.py) wakes the node, sends a request, waits the receive
delay and hears the chunk; a chunk on a reading's ACK costs only the longer reception (the
reading and its window happen anyway). The pace is a token bucket the node keeps as one number
(firmware/fp/update_air.py, GCRA): a quarter of a day's allowance may go at once (``burst``
requests), then one request per ``gap_s`` seconds, so a small delta is not slowed, a whole bundle
spreads over days instead of emptying the cell, and no 24 hours hold more than the allowance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

RX1_DELAY_S = 1.0  # LoRaWAN RECEIVE_DELAY1: awake, radio in standby, between request and window
MAX_FIELD = 0xFFFF  # gap and burst travel as u16 in the offer


@dataclass(frozen=True)
class Pace:
    """At most ``burst`` requests at once, then one every ``gap_s`` seconds."""

    gap_s: int
    burst: int

    def requests_by(self, seconds: float) -> float:
        """The most requests the pace allows within ``seconds`` from a full bucket."""
        return self.burst + max(seconds, 0.0) / self.gap_s


def tx_ma(power: dict[str, Any], tx_dbm: int) -> float:
    """The radio's TX current at ``tx_dbm``: the datasheet point at or above it, else the highest
    (firmware/fp/power.py's rule, conservative)."""
    tx = power["radio_ma"]["tx"]
    levels = sorted(int(k) for k in tx)
    at = [p for p in levels if p >= tx_dbm]
    return float(tx[str(at[0] if at else levels[-1])])


def exchange_mas(power: dict[str, Any], *, tx_dbm: int, request_ms: float, chunk_ms: float) -> float:
    """Charge (mA x s) of one fragment exchange on the node: a wake from sleep (``wake_ms`` of the
    MCU active: a deep-sleeping ESP32 boots again), the request sent, the receive delay in
    standby, the chunk heard; the board's quiescent current throughout."""
    mcu = float(power["mcu_ma"]["active"])
    radio = power["radio_ma"]
    board = float(power.get("board_ma", 0.0))
    wake_s = float(power.get("wake_ms", 0)) / 1000
    tx_s, rx_s = request_ms / 1000, chunk_ms / 1000
    awake_s = wake_s + tx_s + RX1_DELAY_S + rx_s
    return (
        (mcu + board) * awake_s
        + tx_ma(power, tx_dbm) * tx_s
        + float(radio["standby"]) * (wake_s + RX1_DELAY_S)
        + float(radio["rx"]) * rx_s
    )


def ack_chunk_mas(power: dict[str, Any], *, chunk_ms: float, ack_ms: float) -> float:
    """Charge of a chunk on a reading's ACK beyond the bare ACK's: the longer reception, awake."""
    extra_s = max(chunk_ms - ack_ms, 0.0) / 1000
    return (
        float(power["mcu_ma"]["active"]) + float(power["radio_ma"]["rx"]) + float(power.get("board_ma", 0.0))
    ) * extra_s


def pace(allowance_mah_day: float, request_mas: float) -> Pace | None:
    """The pace that keeps a node's fragment requests within ``allowance_mah_day`` in any 24 hours:
    a quarter of a day's worth at once (a small delta is not slowed), then the rest of the day's
    evenly spread, so that burst + 86400 / gap requests, the most any day can hold, cost no more
    than the allowance. None: no limit (an allowance of 0, or a request that costs nothing).
    ValueError when the allowance cannot be kept (under two requests a day, or a gap longer than
    an offer carries)."""
    if allowance_mah_day <= 0 or request_mas <= 0:
        return None
    per_day = allowance_mah_day * 3600 / request_mas
    if per_day < 2:
        raise ValueError(
            f"an allowance of {allowance_mah_day:g} mAh a day is under two fragment requests"
            f" ({request_mas / 3600:.4f} mAh each)"
        )
    burst = max(1, min(MAX_FIELD, math.floor(per_day / 4)))
    gap_s = max(1, math.ceil(86400 / (per_day - burst)))
    if gap_s > MAX_FIELD:
        raise ValueError(
            f"an allowance of {allowance_mah_day:g} mAh a day leaves one request every {gap_s} s;"
            f" the offer carries at most {MAX_FIELD} s"
        )
    return Pace(gap_s=gap_s, burst=burst)
