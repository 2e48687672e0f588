"""[updates]: module firmware updates (docs/updates.md)."""

from __future__ import annotations

from dataclasses import dataclass

from edge.config.schema import setting


@dataclass(frozen=True)
class UpdatesSection:
    """Module firmware updates: when one that stopped moving is given up, and what one may cost a
    node's battery."""

    stall_timeout_h: float = setting(
        24.0,
        doc="An update under way (sending or staged) with no progress from its module for this long"
        " (no fragment request, chunk acknowledged or result) is marked failed, freeing its place in"
        " --max-in-flight; 0: never",
        unit="h",
        lo=0,
        hi=24 * 90,
    )
    check_interval_s: float = setting(
        60.0, doc="How often the daemon looks for stalled updates", unit="s", lo=0.01, hi=3600
    )
    energy_mah_day: float = setting(
        10.0,
        doc="A node's fragment requests during an update over the air spend at most this much of its"
        " battery in any 24 hours (a quarter of it at once, the rest evenly spread; from the board"
        " profile's datasheet currents, docs/updates.md); 0: no limit beyond the duty cycle",
        unit="mAh",
        lo=0,
        hi=10000,
    )
