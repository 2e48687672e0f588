"""Reading the outbox (alarms, downlink status, events) in send order without re-reading what is in flight.

The scanner keeps a cursor just past the rows already handed out, so draining a
backlog of millions reads each row about once. Rows in flight are remembered
until their ack (then they are synced and no query returns them) or until the
connection drops (``reset``: everything unsynced is read again from the top, so
exactly the unacknowledged rows are resent). A new row of a more urgent priority
(an alarm arriving during a backlog drain) also sends the scan back to the top.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from edge.sync.batching import Message

_COLUMNS = "id, msg_id, kind, priority, device_id, body, created_at"


class PendingScanner:
    def __init__(self) -> None:
        self.cursor: tuple[int, int] | None = None
        self._inflight: dict[int, tuple[int, int]] = {}  # row id -> (priority, id)

    @property
    def inflight(self) -> set[int]:
        """Ids of the rows sent and not yet acknowledged."""
        return set(self._inflight)

    def in_flight_count(self) -> int:
        return len(self._inflight)

    def reset(self) -> None:
        self.cursor = None
        self._inflight.clear()

    def next_rows(
        self, conn: sqlite3.Connection, limit: int, *, below_priority: int | None = None
    ) -> list[Message]:
        """Up to ``limit`` unsynced rows not in flight, in send order, after the cursor."""
        if self.cursor is not None and self.cursor[0] > 0 and self._urgent_waiting(conn, self.cursor[0]):
            self.cursor = None
        where = ["synced_at IS NULL"]
        params: list[object] = []
        if self.cursor is not None:
            where.append("(priority, id) > (?, ?)")
            params.extend(self.cursor)
        if below_priority is not None:
            where.append("priority < ?")
            params.append(below_priority)
        # Rows in flight beyond the cursor (sent while an earlier row waited) are skipped in
        # Python; fetch that many more so that ``limit`` rows are still returned.
        cursor = self.cursor
        ahead = (
            len(self._inflight) if cursor is None else sum(1 for k in self._inflight.values() if k > cursor)
        )
        params.append(limit + ahead)
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE {' AND '.join(where)} ORDER BY priority, id LIMIT ?",
            params,
        ).fetchall()
        inflight = self._inflight
        out = [Message(*tuple(r)) for r in rows if r[0] not in inflight]
        return out[:limit]

    def _urgent_waiting(self, conn: sqlite3.Connection, priority: int) -> bool:
        rows = conn.execute(
            "SELECT id FROM outbox WHERE synced_at IS NULL AND priority < ? ORDER BY priority, id LIMIT ?",
            (priority, len(self._inflight) + 1),
        ).fetchall()
        return any(r[0] not in self._inflight for r in rows)

    def sent(self, messages: Iterable[Message]) -> None:
        """These rows went out (whole or in part): in flight until acked or reset."""
        for m in messages:
            self._inflight[m.row_id] = m.order_key

    def handed_out(self, rows: list[Message], sent_ids: set[int]) -> None:
        """Record what was sent from ``rows``; move the cursor past the sent prefix only."""
        self.sent(r for r in rows if r.row_id in sent_ids)
        for row in rows:
            if row.row_id not in sent_ids:
                break
            self.cursor = row.order_key

    def acked(self, row_ids: Iterable[int]) -> None:
        for i in row_ids:
            self._inflight.pop(i, None)


def mark_synced(conn: sqlite3.Connection, row_ids: list[int], now: float) -> None:
    """Call inside a transaction: the cloud has these rows."""
    conn.executemany(
        "UPDATE outbox SET synced_at = ?, attempts = attempts + 1 WHERE id = ?",
        # In id order: neighbouring rows share pages, about a third faster than batch order.
        [(now, i) for i in sorted(row_ids)],
    )


def count_attempt(conn: sqlite3.Connection, row_ids: Iterable[int]) -> None:
    """Call inside a transaction: these rows were sent but never acknowledged."""
    conn.executemany(
        "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?",
        [(i,) for i in row_ids],
    )
