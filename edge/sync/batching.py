"""Grouping pending messages (outbox rows and readings) into batches (pure logic, no I/O).

A batch holds messages of ONE priority and ONE routing key (a device's topic for
the generic MQTT profile, one shared key for ThingsBoard and HTTPS), in send
order. Since a device's messages fill its batches one after the other, and batches
are sent in the order they are handed out, per-device order is kept end to end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

OUTBOX = "outbox"
READING = "reading"


class Message(NamedTuple):
    """One thing to send: an outbox row (alarm, downlink status, event) or a stored reading.

    A named tuple: sync makes one per reading sent, and a tuple is the cheapest immutable record.
    """

    row_id: int  # outbox.id, or readings.id (device number << 32 | fcnt)
    msg_id: str
    kind: str
    priority: int
    device_id: str | None
    body: str  # the JSON text sent as is (outbox.body, or built from the reading's row)
    created_at: float
    source: str = OUTBOX  # OUTBOX or READING: which table an ack marks

    @property
    def order_key(self) -> tuple[int, int]:
        return (self.priority, self.row_id)


@dataclass
class Batch:
    route: str
    priority: int
    messages: list[Message] = field(default_factory=list)
    size_estimate: int = 0

    @property
    def row_ids(self) -> list[int]:
        """Every message's row id (outbox ids and reading ids: see ``source``)."""
        return [m.row_id for m in self.messages]

    @property
    def outbox_ids(self) -> list[int]:
        return [m.row_id for m in self.messages if m.source == OUTBOX]

    @property
    def reading_ids(self) -> list[int]:
        return [m.row_id for m in self.messages if m.source == READING]

    @property
    def key(self) -> str:
        """Idempotency key: the same messages always give the same key, whoever sends them."""
        digest = hashlib.sha256("\n".join(m.msg_id for m in self.messages).encode())
        return digest.hexdigest()[:32]

    @property
    def oldest_created_at(self) -> float:
        return min(m.created_at for m in self.messages)


# Per-message envelope overhead in the JSON encodings ({"kind":..,"id":..,"body":..}).
_ENVELOPE_OVERHEAD = 40


def build_batches(
    messages: Iterable[Message],
    route_of: Callable[[Message], str],
    *,
    max_messages: int,
    max_bytes: int,
) -> tuple[list[Batch], list[Batch]]:
    """Split messages (in send order) into batches.

    Returns ``(full, partial)``: batches closed because they reached a size limit, in
    the order they closed, and the still-open ones, in the order they opened. A
    message alone over ``max_bytes`` still gets a batch of its own (it must go out).
    """
    full: list[Batch] = []
    open_batches: dict[tuple[int, str], Batch] = {}
    for msg in messages:
        route = route_of(msg)
        slot = (msg.priority, route)
        size = len(msg.body) + len(msg.msg_id) + _ENVELOPE_OVERHEAD
        batch = open_batches.get(slot)
        if batch is not None and batch.size_estimate + size > max_bytes:
            full.append(open_batches.pop(slot))
            batch = None
        if batch is None:
            batch = open_batches[slot] = Batch(route=route, priority=msg.priority)
        batch.messages.append(msg)
        batch.size_estimate += size
        if len(batch.messages) >= max_messages:
            full.append(open_batches.pop(slot))
    return full, list(open_batches.values())
