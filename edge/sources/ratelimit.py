"""A token bucket per source address: a flood from one address is dropped, the others go on."""

from __future__ import annotations

from collections.abc import Callable


class RateLimiter:
    """``allow(address)``: ``rate`` datagrams a second sustained, ``burst`` at once, per address.

    At most ``max_addresses`` buckets are kept: past that the fullest (idle) ones are forgotten, so a
    spoofed sweep of addresses cannot grow memory without bound. The clock is passed in (monotonic s).
    """

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float], max_addresses: int = 4096):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max = max_addresses
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, at)

    def allow(self, address: str) -> bool:
        now = self._clock()
        tokens, at = self._buckets.get(address, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        self._buckets[address] = (tokens - 1.0 if ok else tokens, now)
        if len(self._buckets) > self._max:
            self._forget(now)
        return ok

    def _forget(self, now: float) -> None:
        # drop the buckets that would be full again by now: they hold nothing worth keeping
        full = [a for a, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst]
        for address in full[: max(1, len(self._buckets) - self._max // 2)]:
            del self._buckets[address]
        while len(self._buckets) > self._max:
            del self._buckets[next(iter(self._buckets))]
