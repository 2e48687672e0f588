"""Group commit: one writer thread, one transaction for every frame that is waiting.

Ports hand in UPLINK payloads with a ``reply`` callback. The writer takes all that
is queued (waiting up to ``batch_wait_s`` for more once it has one), processes
them in ONE transaction (WAL, synchronous=FULL: COMMIT returns after fsync), and
only then calls each ``reply`` with its ACK payload. A crash before COMMIT loses
nothing that was ACKed: nothing in the batch was. After the replies, the
post-commit hooks receive the new readings, on a thread of their own.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.codecs import CodecRunner
from edge.db import transaction
from edge.ingest.backpressure import Backpressure
from edge.ingest.process import CommittedReading, Outcome, handle_uplink
from edge.logs import kv
from edge.radio import AckResult

log = logging.getLogger("fieldpost.ingest")

Hook = Callable[[list[CommittedReading]], None]


@dataclass
class Item:
    payload: bytes
    bridge_id: str | None
    reply: Callable[[bytes], None]
    fail: Callable[[], None] | None = None
    submitted: float = 0.0


@dataclass
class Call:
    """Other work for the writer's transaction (a module's STATUS, downlink expiry ...)."""

    fn: Callable[[sqlite3.Connection, float], None]
    reply: Callable[[], None] | None = None


@dataclass
class IngestStats:
    frames: int = 0
    batches: int = 0
    commit_failures: int = 0
    results: dict[str, int] | None = None
    last_batch_size: int = 0
    commit_seconds_total: float = 0.0

    def __post_init__(self):
        self.results = {r.name.lower(): 0 for r in AckResult}


class Ingestor:
    """The single writer of readings. Thread-safe ``submit``; replies come from the writer thread."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        codecs: CodecRunner,
        backpressure: Backpressure | None = None,
        clock: Callable[[], float] = time.time,
        batch_max: int = 256,
        batch_wait_s: float = 0.002,
        on_batch: Callable[[list[Outcome], float], None] | None = None,
    ):
        self._conn = conn
        self._codecs = codecs
        self.backpressure = backpressure
        self._clock = clock
        self._batch_max = batch_max
        self._batch_wait = batch_wait_s
        self._queue: queue.Queue[Item | Call | None] = queue.Queue()
        self._hooks: list[Hook] = []
        self._on_batch = on_batch
        self._thread: threading.Thread | None = None
        self._hook_queue: queue.Queue[list[CommittedReading] | None] = queue.Queue()
        self._hook_thread: threading.Thread | None = None
        self.stats = IngestStats()

    # --- API -------------------------------------------------------------------------------

    def add_hook(self, hook: Hook) -> None:
        """Call ``hook(readings)`` after every commit that stored readings (errors are logged)."""
        self._hooks.append(hook)

    def submit(
        self,
        payload: bytes,
        *,
        bridge_id: str | None,
        reply: Callable[[bytes], None],
        fail: Callable[[], None] | None = None,
    ) -> None:
        self._queue.put(Item(bytes(payload), bridge_id, reply, fail, time.monotonic()))

    def submit_call(
        self, fn: Callable[[sqlite3.Connection, float], None], reply: Callable[[], None] | None = None
    ) -> None:
        """Run ``fn(conn, now)`` inside the next batch transaction, then ``reply()`` after its commit."""
        self._queue.put(Call(fn, reply))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self.backpressure is not None:
            self.backpressure.refresh(self._conn, force=True)
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
                # Idle (or refusing everything while busy): re-read the backlog, which
                # sync may have drained, so a busy edge notices when to resume.
                if self.backpressure is not None:
                    self.backpressure.refresh(self._conn)
                continue
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + self._batch_wait
            while len(batch) < self._batch_max:
                try:
                    remaining = deadline - time.monotonic()
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self.process_batch(batch)
        # drain what arrived together with the stop marker
        rest = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                rest.append(item)
        if rest:
            self.process_batch(rest)

    def process_batch(self, items: list[Item | Call]) -> list[Outcome] | None:
        """One transaction for the whole batch, then the replies, then the hooks."""
        now = self._clock()
        started = time.monotonic()
        outcomes: list[Outcome] = []
        batch = [i for i in items if isinstance(i, Item)]
        calls = [i for i in items if isinstance(i, Call)]
        try:
            with transaction(self._conn):
                for call in calls:
                    self._run_call(call, now)
                for item in batch:
                    try:
                        outcomes.append(
                            handle_uplink(
                                self._conn,
                                item.payload,
                                bridge_id=item.bridge_id,
                                codecs=self._codecs,
                                now=now,
                            )
                        )
                    except sqlite3.Error:
                        raise
                    except Exception as exc:  # one bad frame must not sink its batch
                        log.exception("uplink failed %s", kv(bridge=item.bridge_id))
                        outcomes.append(
                            Outcome(
                                AckResult.MALFORMED,
                                bytes([AckResult.MALFORMED]),
                                detail=f"internal error: {exc}",
                            )
                        )
        except sqlite3.Error as exc:
            # Nothing was committed, so nothing is ACKed: the modules keep and resend the frames.
            self.stats.commit_failures += 1
            log.error("commit failed %s", kv(frames=len(batch), error=exc))
            for item in batch:
                if item.fail is not None:
                    item.fail()
            time.sleep(0.1)
            return None
        for call in calls:
            if call.reply is not None:
                try:
                    call.reply()
                except Exception as exc:  # a port that went away must not stop the others
                    log.warning("reply failed %s", kv(error=exc))
        if not batch:
            return outcomes
        elapsed = time.monotonic() - started
        self.stats.batches += 1
        self.stats.frames += len(batch)
        self.stats.last_batch_size = len(batch)
        self.stats.commit_seconds_total += elapsed
        stored = [o.reading for o in outcomes if o.reading is not None]
        if self.backpressure is not None:
            self.backpressure.committed(sum(1 for r in stored if r.port in (1, 3)))
            self.backpressure.refresh(self._conn)
        for item, outcome in zip(batch, outcomes, strict=True):
            self.stats.results[outcome.result.name.lower()] += 1
            if outcome.result not in (AckResult.STORED, AckResult.DUPLICATE):
                log.warning(
                    "uplink rejected %s",
                    kv(
                        result=outcome.result.name.lower(),
                        device=outcome.device_id,
                        fcnt=outcome.fcnt,
                        bridge=item.bridge_id,
                        why=outcome.detail,
                    ),
                )
            try:
                item.reply(outcome.ack)
            except Exception as exc:  # a port that went away must not stop the others
                log.warning("reply failed %s", kv(bridge=item.bridge_id, error=exc))
        if self._on_batch is not None:
            self._on_batch(outcomes, elapsed)
        if stored and self._hooks:
            self._hook_queue.put(stored)
        return outcomes

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
        try:
            call.fn(self._conn, now)
        except sqlite3.OperationalError:
            raise  # the database itself is failing: the whole batch fails
        except Exception:  # a task's bug must not sink the uplinks of its batch
            self._conn.execute("ROLLBACK TO call")
            log.exception("writer task failed %s", kv(task=getattr(call.fn, "__name__", call.fn)))
            call.reply = None
        self._conn.execute("RELEASE call")
