"""Per-source counters (messages by result), shown on /metrics as fieldpost_source_messages_total."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily


class Counters:
    """Thread-safe: the receiving thread and the ingest writer's replies both count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, source: str, result: str, n: int = 1) -> None:
        with self._lock:
            self._counts[(source, result)] += n

    def get(self, source: str, result: str) -> int:
        with self._lock:
            return self._counts[(source, result)]

    def snapshot(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (source, result), n in self._counts.items():
                out.setdefault(source, {})[result] = n
        return out

    def families(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "fieldpost_source_messages",
            "Messages from ChirpStack, UDP and CoAP devices, by result",
            labels=["source", "result"],
        )
        with self._lock:
            for (source, result), n in sorted(self._counts.items()):
                family.add_metric([source, result], n)
        yield family
