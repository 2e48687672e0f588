"""Exponential backoff with full jitter (pure: the random source is passed in).

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the
reconnects of many sites after a cloud outage instead of having them all knock at
the same instants.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None):
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError("need 0 < initial_s <= max_s")
        self.initial_s = initial_s
        self.max_s = max_s
        self._rng = rng or random.Random()
        self.failures = 0

    def ceiling(self) -> float:
        """The largest delay the next draw may give."""
        if self.failures == 0:
            return 0.0
        # Cap the exponent so 2**n never overflows after a week of failures.
        return min(self.max_s, self.initial_s * (2 ** min(self.failures - 1, 60)))

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next try."""
        self.failures += 1
        ceiling = self.ceiling()
        # Never less than a tenth of the ceiling, so a run of tiny draws cannot hammer the peer.
        return self._rng.uniform(ceiling / 10, ceiling)

    def hold_max(self) -> float:
        """Jump straight to the ceiling (after a permanent rejection) and return that delay."""
        self.failures = max(self.failures, 64)
        return self.max_s

    def reset(self) -> None:
        self.failures = 0
