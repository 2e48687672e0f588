"""Unsynced readings, read straight from the readings table past the cloud cursor.

Per device, readings go out in id (= fcnt) order. The scanner remembers, per device, the
highest id handed to the sink (``sent``) and which of those are still waiting for their
ack; when acks come in, the device's cursor moves over the acknowledged prefix only, and
the new marks are returned for the caller to commit with ``edge.store.cursor.advance``. After
a dropped connection (``reset``) everything past the committed cursor is read again: exactly
the readings never acknowledged are resent.

Documents are built here, once, from the row and the values decoded from its raw payload
(edge.store.decode); a batch's envelope then splices the texts together.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Iterable

from edge.codecs import CodecRunner
from edge.store import cursor, readings
from edge.store.decode import decode_payload_json
from edge.store.document import reading_json
from edge.store.numbers import Numbers
from edge.sync.batching import READING, Message

PRIORITY_READING = 1
KIND_BY_PORT = {1: "reading", 3: "status"}
CODECS_REFRESH_S = 5.0  # how often a device's codec (which the panel can change) is read again


class ReadingScanner:
    def __init__(self, codecs: CodecRunner, *, sink: str = cursor.CLOUD, numbers: Numbers | None = None):
        self._codecs = codecs
        self.sink = sink
        self._numbers = numbers or Numbers()
        self._cursor: dict[int, int] | None = None  # committed marks, loaded at the first scan
        self._sent: dict[int, int] = {}  # device number -> highest id handed out
        self._waiting: dict[int, deque[int]] = {}  # device number -> ids sent, in order, not yet acked
        self._acked: set[int] = set()
        self._built: dict[int, list[Message]] = {}  # device number -> messages built, not handed out
        self._device_codecs: dict[str, str] = {}
        self._codecs_read_at = float("-inf")

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """The connection dropped: forget what is in flight; read again from the committed cursor."""
        self._cursor = None
        self._built.clear()
        self._sent.clear()
        self._waiting.clear()
        self._acked.clear()

    def in_flight_count(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    # ------------------------------------------------------------------ reading

    def next_messages(self, conn: sqlite3.Connection, limit: int, *, per_device: int) -> list[Message]:
        """Up to ``limit`` unsynced readings not yet handed out, at most ``per_device`` per device.

        Devices are taken in number order, each for a run of up to ``per_device`` readings, so a
        backlog drains in full batches. Messages built but not handed out (the tail of a run that
        did not fill a batch) are kept and given again first, so no document is built twice.
        """
        if self._cursor is None:
            self._cursor = cursor.load(conn, self.sink)
        self._refresh_codecs(conn)
        out: list[Message] = []
        for pending in cursor.pending_devices(conn, self.sink):
            if len(out) >= limit:
                break
            n = pending.device
            after = max(pending.after, self._sent.get(n, pending.after))
            want = min(per_device, limit - len(out))
            run = [m for m in self._built.get(n, ()) if m.row_id > after][:want]
            if run:
                after = run[-1].row_id
            _, high = readings.device_bounds(n)
            if len(run) < want and after < high:
                run += self._build(
                    conn, n, readings.select_rows(conn, after + 1, high, limit=want - len(run))
                )
            self._built[n] = run
            out += run
        return out

    def _build(self, conn: sqlite3.Connection, n: int, rows: list[readings.Row]) -> list[Message]:
        """Messages for a device's rows: its document, built once from the row and its decoded values."""
        device_id = self._numbers.device_id(conn, n)
        if device_id is None:
            return []
        codec = self._device_codecs.get(device_id, "lpp")
        out = []
        for rid, ms, port, rssi, snr_q, bridge, _skew, raw, age in rows:
            kind = KIND_BY_PORT.get(port)
            fcnt = rid & readings.FCNT_MASK
            if kind is None:  # e.g. a downlink result: not sent, but the cursor moves over it
                body = ""
            else:
                values, _error = decode_payload_json(self._codecs, codec, port, raw)
                bridge_id = self._numbers.device_id(conn, bridge)
                body = reading_json(device_id, fcnt, ms, port, values, raw, rssi, snr_q, bridge_id, age)
            out.append(
                Message(
                    rid,
                    f"{device_id}:{fcnt}",
                    kind or "",
                    PRIORITY_READING,
                    device_id,
                    body,
                    ms / 1000,
                    READING,
                )
            )
        return out

    def _refresh_codecs(self, conn: sqlite3.Connection) -> None:
        now = time.monotonic()
        if now - self._codecs_read_at >= CODECS_REFRESH_S:
            self._device_codecs = {dev: codec for dev, codec in conn.execute("SELECT id, codec FROM devices")}
            self._codecs_read_at = now

    # ------------------------------------------------------------------ sending and acks

    def handed_out(self, messages: list[Message], sent_ids: set[int]) -> None:
        """Of ``messages`` (as next_messages gave them), those in ``sent_ids`` went to the sink.

        Per device only a prefix counts as handed out: a reading not sent this time holds back
        the ones after it, so the device's readings always go in order. Readings that are never
        sent (``kind`` ""; a downlink result) count as sent and acknowledged when reached.
        """
        blocked: set[int] = set()
        for m in messages:
            n = m.row_id >> readings.FCNT_BITS
            if n in blocked:
                continue
            if not m.kind or m.row_id in sent_ids:
                self._waiting.setdefault(n, deque()).append(m.row_id)
                self._sent[n] = m.row_id
                if not m.kind:
                    self._acked.add(m.row_id)
            else:
                blocked.add(n)

    def sent(self, messages: Iterable[Message]) -> None:
        """These readings went out (a batch that failed half way): in flight until reset."""
        for m in messages:
            n = m.row_id >> readings.FCNT_BITS
            self._waiting.setdefault(n, deque()).append(m.row_id)
            self._sent[n] = max(m.row_id, self._sent.get(n, -1))

    def acked(self, ids: Iterable[int]) -> list[cursor.Move]:
        """Note acks; return, per device whose acknowledged prefix grew, the cursor move to commit
        (with :meth:`settle`)."""
        self._acked.update(ids)
        if self._cursor is None:
            self._cursor = {}
        moves = []
        for n, waiting in self._waiting.items():
            passed = []
            while waiting and waiting[0] in self._acked:
                rid = waiting.popleft()
                self._acked.discard(rid)
                passed.append(rid)
            if passed:
                old = self._cursor.get(n, (n << readings.FCNT_BITS) - 1)
                moves.append(cursor.Move(n, old, passed[-1], passed))
                self._cursor[n] = passed[-1]
        return moves

    def settle(self, conn: sqlite3.Connection, moves: list[cursor.Move]) -> int:
        """Commit the moves' cursors (inside the caller's transaction); a device whose cursor could
        not move as planned is read again from where it stands. Returns the readings now synced."""
        done = 0
        for step in moves:
            stands = cursor.move(conn, step, self.sink)
            done += sum(1 for rid in step.passed if rid <= stands)
            if stands != step.new:
                self._forget(step.device, stands)
        return done

    def _forget(self, n: int, mark: int) -> None:
        assert self._cursor is not None
        self._cursor[n] = mark
        self._sent.pop(n, None)
        self._waiting.pop(n, None)
        self._built.pop(n, None)
        self._acked = {rid for rid in self._acked if rid >> readings.FCNT_BITS != n}
