"""[updates]: module firmware updates (docs/updates.md)."""

from __future__ import annotations

from dataclasses import dataclass

from edge.config.schema import setting


@dataclass(frozen=True)
class UpdatesSection:
    """Module firmware updates: when one that stopped moving is given up."""

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
