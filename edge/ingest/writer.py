"""Group commit: one writer thread, one transaction for every frame that is waiting.

Ports hand in UPLINK payloads with a ``reply`` callback. The writer takes all that is queued
(waiting up to ``batch_wait_s`` for more once it has one, but not once every link in the
batch has handed in its whole window: nothing more can come from them before their ACKs),
processes them in ONE transaction (WAL, synchronous=FULL: COMMIT returns after the fsync),
and only then calls each ``reply`` with its ACK payload. A reply only queues the ACK: the
link's own thread writes it to the port. A crash before COMMIT loses nothing that was
ACKed: nothing in the batch was. After the replies, the post-commit hooks receive the new
readings, from memory, on a thread of their own.

A failed COMMIT answers no frame with an ACK: each item's ``refuse(reason)`` is called (the
link makes the module send them again later) and ``on_commit_failed`` is told why, so the
daemon can react to a full disk (edge.store.space).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from edge.ingest.backpressure import Backpressure
from edge.ingest.process import CommittedReading, Outcome, handle_batch, handle_uplink
from edge.logs import kv
from edge.lorawan.network import Network
from edge.radio import AckResult
from edge.store import transaction
from edge.store.numbers import Numbers

log = logging.getLogger("fieldpost.ingest")

Hook = Callable[[list[CommittedReading]], None]
T = TypeVar("T")


class Source(Protocol):
    """Where items come from (a link): its window bounds how many can be waiting at once."""

    window: int


@dataclass(slots=True)
class Item:
    payload: bytes
    bridge_id: str | None
    reply: Callable[[bytes], object]  # what they return is not used
    refuse: Callable[[str], object] | None = None
    source: Source | None = None
    submitted: float = 0.0


@dataclass(slots=True)
class Call:
    """Other work for the writer's transaction (a module's STATUS, downlink expiry ...)."""

    fn: Callable[[sqlite3.Connection, float], object]  # what it returns is not used
    reply: Callable[[], None] | None = None


@dataclass
class IngestStats:
    frames: int = 0
    batches: int = 0
    commit_failures: int = 0
    results: dict[str, int] = field(default_factory=lambda: {r.name.lower(): 0 for r in AckResult})
    last_batch_size: int = 0
    commit_seconds_total: float = 0.0
    slow_path_batches: int = 0  # batches re-run frame by frame after an unexpected error
    longest_batch_s: float = 0.0  # the longest transaction (work + commit) so far, uplinks or not
    longest_call_s: float = 0.0  # the longest task another part ran in a transaction (retention)


class Ingestor:
    """The single writer of readings. Thread-safe ``submit``; replies come from the writer thread."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        backpressure: Backpressure | None = None,
        clock: Callable[[], float] = time.time,
        batch_max: int = 256,
        batch_wait_s: float = 0.002,
        on_batch: Callable[[list[Outcome], float], None] | None = None,
        on_commit_failed: Callable[[sqlite3.Error], str] | None = None,
        numbers: Numbers | None = None,
        network: Network | None = None,
    ):
        self._conn = conn
        self.network = network or Network()
        self.backpressure = backpressure
        self._clock = clock
        self._batch_max = batch_max
        self._batch_wait = batch_wait_s
        self._queue: queue.Queue[Item | Call | list[Item] | None] = queue.Queue()
        self._hooks: list[Hook] = []
        self._on_batch = on_batch
        self._on_commit_failed = on_commit_failed
        self.numbers = numbers or Numbers()
        self._thread: threading.Thread | None = None
        self._hook_queue: queue.Queue[list[CommittedReading] | None] = queue.Queue()
        self._hook_thread: threading.Thread | None = None
        self.stats = IngestStats()
        self.last_commit_at: float | None = None  # monotonic: when the writer last committed

    # --- API -------------------------------------------------------------------------------

    def add_hook(self, hook: Hook) -> None:
        """Call ``hook(readings)`` after every commit that stored readings (errors are logged)."""
        self._hooks.append(hook)

    def committed_elsewhere(self, readings: list[CommittedReading]) -> None:
        """Hand the post-commit hooks readings that a task in the writer's transaction stored (a
        source's, edge.sources): call from that task's reply, i.e. after the commit."""
        if readings and self._hooks:
            self._hook_queue.put(readings)

    def submit(
        self,
        payload: bytes,
        *,
        bridge_id: str | None,
        reply: Callable[[bytes], object],
        refuse: Callable[[str], object] | None = None,
        source: Source | None = None,
    ) -> None:
        self._queue.put(Item(bytes(payload), bridge_id, reply, refuse, source, time.monotonic()))

    def submit_many(self, items: list[Item]) -> None:
        """Hand in several UPLINKs at once (the frames of one read from a link): one queue operation."""
        now = time.monotonic()
        for item in items:
            item.submitted = now
        self._queue.put(items)

    def submit_call(
        self, fn: Callable[[sqlite3.Connection, float], object], reply: Callable[[], None] | None = None
    ) -> None:
        """Run ``fn(conn, now)`` inside the next batch transaction, then ``reply()`` after its commit."""
        self._queue.put(Call(fn, reply))

    def run(self, fn: Callable[[sqlite3.Connection], T], *, timeout: float = 30.0) -> T:
        """Run ``fn(conn)`` in the writer's next transaction and return its result once committed.

        For other writers in this process (retention): their writes then take turns with the
        uplinks instead of contending for SQLite's write lock. Raises TimeoutError when no
        commit happened within ``timeout`` (the store failing, or stopped), and what ``fn`` raised.
        """
        done = threading.Event()
        box: list = []

        def task(conn: sqlite3.Connection, _now: float) -> None:
            conn.execute("SAVEPOINT task")
            try:
                box.append((True, fn(conn)))
            except sqlite3.OperationalError:
                raise  # the store is failing: the whole batch fails, run() times out
            except Exception as exc:  # fn's own error: undo what it did, hand the error back
                conn.execute("ROLLBACK TO task")
                box.append((False, exc))
            conn.execute("RELEASE task")

        self.submit_call(task, reply=done.set)
        if not done.wait(timeout):
            raise TimeoutError(f"the ingest writer did not commit within {timeout} s")
        ok, value = box[-1]
        if not ok:
            raise value
        return value

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fieldpost-ingest", daemon=True)
        self._thread.start()
        self._hook_thread = threading.Thread(target=self._run_hooks, name="fieldpost-hooks", daemon=True)
        self._hook_thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit and answer everything submitted so far, then end the writer thread."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None
        if self._hook_thread is not None:
            self._hook_queue.put(None)
            self._hook_thread.join(timeout)
            self._hook_thread = None

    # --- writer ----------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if first is None:
                break
            batch, stopping = self._collect(first)
            self.process_batch(batch)
        # drain what arrived together with the stop marker
        rest: list[Item | Call] = []
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(entry, list):
                rest.extend(entry)
            elif entry is not None:
                rest.append(entry)
        if rest:
            self.process_batch(rest)

    def _collect(self, first: Item | Call | list[Item]) -> tuple[list[Item | Call], bool]:
        """``first`` and whatever else comes within the batch wait; True when the stop marker came."""
        batch: list[Item | Call] = []
        per_source: Counter[Source] = Counter()

        def add(entry: Item | Call | list[Item]) -> None:
            for item in entry if isinstance(entry, list) else (entry,):
                batch.append(item)
                if isinstance(item, Item) and item.source is not None:
                    per_source[item.source] += 1

        add(first)
        deadline = time.monotonic() + self._batch_wait
        while len(batch) < self._batch_max:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                # Nothing queued: wait for more only while some link in the batch may still send.
                if per_source and all(n >= s.window for s, n in per_source.items()):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    entry = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if entry is None:
                return batch, True
            add(entry)
        return batch, False

    def process_batch(self, items: list[Item | Call]) -> list[Outcome] | None:
        """One transaction for the whole batch, then the replies, then the hooks."""
        now = self._clock()
        started = time.monotonic()
        batch = [i for i in items if isinstance(i, Item)]
        calls = [i for i in items if isinstance(i, Call)]
        try:
            outcomes = self._transact(batch, calls, now)
        except sqlite3.Error as exc:
            # Nothing was committed, so nothing is ACKed: the modules keep and resend the frames.
            self._commit_failed(exc, batch, calls)
            return None
        self.last_commit_at = time.monotonic()
        self.stats.longest_batch_s = max(self.stats.longest_batch_s, self.last_commit_at - started)
        for call in calls:
            if call.reply is not None:
                try:
                    call.reply()
                except Exception as exc:  # a port that went away must not stop the others
                    log.warning("reply failed %s", kv(error=exc))
        if not batch:
            return outcomes
        elapsed = time.monotonic() - started
        stats = self.stats
        stats.batches += 1
        stats.frames += len(batch)
        stats.last_batch_size = len(batch)
        stats.commit_seconds_total += elapsed
        results = stats.results
        for item, outcome in zip(batch, outcomes, strict=True):
            try:
                item.reply(outcome.ack)
            except Exception as exc:  # a port that went away must not stop the others
                log.warning("reply failed %s", kv(bridge=item.bridge_id, error=exc))
            name = outcome.result.name.lower()
            if outcome.result == AckResult.STORED and outcome.reading is None:
                name = "session_start"  # a LoRaWAN node's port-5 frame: ACKed, no reading
            results[name] = results.get(name, 0) + 1
            if outcome.result == AckResult.JOINED:
                log.info("joined %s", kv(device=outcome.device_id, bridge=item.bridge_id))
            elif outcome.result not in (AckResult.STORED, AckResult.DUPLICATE) and outcome.detail:
                # A flood of rejections (forged MICs, random ids) must not be a flood of log lines:
                # a few per minute per result, each saying how many were held back since the last.
                held = self.network.logs.allow(name, now)
                if held is not None:
                    fields = {"result": name, "device": outcome.device_id, "fcnt": outcome.fcnt}
                    fields.update(bridge=item.bridge_id, why=outcome.detail)
                    if held:
                        fields["suppressed"] = held
                    log.warning("uplink rejected %s", kv(**fields))
        stored = [o.reading for o in outcomes if o.reading is not None]
        if self.backpressure is not None:
            self.backpressure.committed(sum(1 for r in stored if r.port in (1, 3)))
        if self._on_batch is not None:
            self._on_batch(outcomes, elapsed)
        if stored and self._hooks:
            self._hook_queue.put(stored)
        return outcomes

    def _transact(self, batch: list[Item], calls: list[Call], now: float) -> list[Outcome]:
        frames = [(item.payload, item.bridge_id) for item in batch]
        try:
            with transaction(self._conn):
                for call in calls:
                    self._run_call(call, now)
                return (
                    handle_batch(self._conn, frames, numbers=self.numbers, now=now, network=self.network)
                    if frames
                    else []
                )
        except sqlite3.Error:
            raise
        except Exception:
            # A bug on one frame must not sink its batch: run it again frame by frame, each in a
            # savepoint, so only the frame that fails is refused (answered MALFORMED).
            log.exception("uplink batch failed; retrying frame by frame %s", kv(frames=len(frames)))
            self.stats.slow_path_batches += 1
        with transaction(self._conn):
            for call in calls:
                self._run_call(call, now)
            outcomes = []
            for payload, bridge_id in frames:
                try:
                    outcomes.append(
                        handle_uplink(
                            self._conn,
                            payload,
                            bridge_id=bridge_id,
                            numbers=self.numbers,
                            now=now,
                            network=self.network,
                        )
                    )
                except sqlite3.Error:
                    raise
                except Exception as exc:
                    log.exception("uplink failed %s", kv(bridge=bridge_id))
                    outcomes.append(
                        Outcome(
                            AckResult.MALFORMED, bytes([AckResult.MALFORMED]), detail=f"internal error: {exc}"
                        )
                    )
            return outcomes

    def _commit_failed(self, exc: sqlite3.Error, batch: list[Item], calls: list[Call]) -> None:
        self.stats.commit_failures += 1
        if self._conn.in_transaction:  # a failed COMMIT can leave the transaction open
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        reason = self._on_commit_failed(exc) if self._on_commit_failed is not None else "storage error"
        log.error("commit failed %s", kv(frames=len(batch), calls=len(calls), error=exc, answer=reason))
        for item in batch:
            if item.refuse is not None:
                try:
                    item.refuse(reason)
                except Exception as exc2:
                    log.warning("refuse failed %s", kv(bridge=item.bridge_id, error=exc2))
        # The calls are lost with the batch; their owners ask again (expiry timers, bridge polls).
        time.sleep(0.05)

    def _run_hooks(self) -> None:
        # Its own thread, so a slow hook (the rules engine commits too) never delays an ACK.
        # Everything committed meanwhile is handed over in one call.
        stopping = False
        while not stopping:
            readings = self._hook_queue.get()
            if readings is None:
                break
            while True:
                try:
                    more = self._hook_queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                readings = readings + more
            for hook in self._hooks:
                try:
                    hook(readings)
                except Exception:  # a hook's bug must not stop ingest
                    log.exception("post-commit hook failed %s", kv(hook=getattr(hook, "__name__", hook)))

    def _run_call(self, call: Call, now: float) -> None:
        self._conn.execute("SAVEPOINT call")
        started = time.monotonic()
        try:
            call.fn(self._conn, now)
            self.stats.longest_call_s = max(self.stats.longest_call_s, time.monotonic() - started)
        except sqlite3.OperationalError:
            raise  # the database itself is failing: the whole batch fails
        except Exception:  # a task's bug must not sink the uplinks of its batch
            self._conn.execute("ROLLBACK TO call")
            log.exception("writer task failed %s", kv(task=getattr(call.fn, "__name__", call.fn)))
            call.reply = None
        self._conn.execute("RELEASE call")
