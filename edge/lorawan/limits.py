"""Flood limits: token buckets per source, and log lines that say how many were held back.

Pure logic with the clock passed in. A forged-MIC flood or a storm of random device ids must
cost neither a log line nor a database row per frame: past its rate a source's frames are
refused without the crypto or the quarantine insert, and counted.
"""

from __future__ import annotations

from collections import OrderedDict


class RateLimiter:
    """``per_min`` events per minute per key, in bursts up to ``burst``; at most ``max_keys`` keys
    remembered (the least recently seen forgotten first, so random keys cannot grow memory)."""

    def __init__(self, per_min: float, *, burst: float | None = None, max_keys: int = 4096):
        self.rate = per_min / 60.0
        self.burst = burst if burst is not None else max(1.0, per_min)
        self.max_keys = max_keys
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def allow(self, key: object, now: float) -> bool:
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        if ok:
            tokens -= 1.0
        else:
            self.refused += 1
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return ok


class LogLimiter:
    """At most ``per_min`` lines per minute per kind; ``allow`` returns how many of that kind
    were suppressed since the last line let through (to print with it), or None to stay quiet."""

    def __init__(self, per_min: float):
        self._limiter = RateLimiter(per_min, burst=max(1.0, per_min / 4))
        self.suppressed: dict[str, int] = {}
        self.suppressed_total = 0

    def allow(self, kind: str, now: float) -> int | None:
        if self._limiter.allow(kind, now):
            return self.suppressed.pop(kind, 0)
        self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
        self.suppressed_total += 1
        return None
