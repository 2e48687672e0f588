"""The sync service: drains the outbox into the configured sink, on its own thread.

    service = SyncService(db_path, config_section, clock=time.time)
    service.start()   # returns at once; runs until stop()
    service.stop()    # a last bounded flush on a healthy connection (flush_on_stop_s), then returns

One loop, one thread, one database connection: connect (with backoff), fill the
pipeline with batches, poll the network for acks and downlinks, mark acked rows
synced. A row is marked synced only after the broker's PUBACK (or an HTTP 2xx), in
a committed transaction; anything else leaves it unsynced, to be resent.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge.codecs import CodecRunner
from edge.errors import SinkRejected, SinkUnavailable
from edge.store import connect, transaction
from edge.sync import budget, encoding, state
from edge.sync.backoff import Backoff
from edge.sync.batching import Batch, Message, build_batches
from edge.sync.config import SyncConfig, parse_sync_config
from edge.sync.downlinks_in import make_handler
from edge.sync.https_sink import HttpsSink
from edge.sync.mqtt_sink import MqttSink
from edge.sync.panel_settings import ENDPOINT_KEY, SettingsWatch, describe_endpoint, sync_config_with
from edge.sync.pending import PendingScanner, count_attempt, mark_synced
from edge.sync.reading_scan import ReadingScanner
from edge.sync.worker_thread import ThreadedLoop

log = logging.getLogger("fieldpost.sync")

_MAX_WINDOW = 20_000
# While backed off after a failure, look this often whether the endpoint answers again (a TCP
# connect, nothing sent), so a broker that comes back is used within seconds, not after the
# full back-off delay.
PROBE_EVERY_S = 2.0


class SyncService(ThreadedLoop):
    def __init__(
        self,
        db_path: str | Path,
        config: SyncConfig | Mapping[str, Any] | None,
        clock: Callable[[], float] = time.time,
        *,
        rng: random.Random | None = None,
        site: str | None = None,
        panel_settings: bool = True,
        settings_poll_s: float = 1.0,
        on_synced: Callable[[int], None] | None = None,
        codecs: CodecRunner | None = None,
    ):
        self.db_path = Path(db_path)
        # The config file's settings; the panel's stored endpoint (if any) is laid over them.
        self.base_config = config if isinstance(config, SyncConfig) else parse_sync_config(config, site=site)
        self.config = self.base_config
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s, rng)
        self._scanner = PendingScanner()
        self._own_codecs = codecs is None  # the daemon's shared runner is the daemon's to close
        self._codecs = codecs or CodecRunner()
        self._readings = ReadingScanner(self._codecs)
        self._on_synced = on_synced  # the daemon's backpressure: this many fewer wait for the cloud
        self._settings = SettingsWatch([ENDPOINT_KEY]) if panel_settings else None
        self._settings_poll_s = settings_poll_s
        self._settings_due = 0.0  # monotonic time of the next look at the settings table
        self._settings_changed = False
        if self._settings is not None:
            try:
                conn = connect(self.db_path)
                try:
                    stored = self._settings.poll(conn)
                finally:
                    conn.close()
            except sqlite3.Error as exc:  # the loop reads them again once the database opens
                log.error("sync=settings event=read_failed error=%r", exc)
                stored = None
            self.config = sync_config_with(self.base_config, stored or {})
            if self.config != self.base_config:
                log.info(
                    "sync=settings event=endpoint_from_panel endpoint=%s", describe_endpoint(self.config)
                )
        self._pending_config = self.config
        # Built now so that a bad certificate path or URL fails at start-up, as a ConfigError.
        self.sink = self._make_sink()
        self._connected_at: float | None = None
        self._unflushed_bytes = 0
        self._used_day: str | None = None
        self._used_today = 0
        # Priorities >= this wait for tomorrow's budget (None: the budget is not exhausted).
        self._budget_floor: int | None = None
        self._budget_day: str | None = None
        # Figures for /metrics (read from other threads; plain ints are safe to read).
        self.batches_sent = 0
        self.messages_acked = 0
        self.bytes_sent = 0
        self.reconnects = 0

    def _make_sink(self) -> MqttSink | HttpsSink:
        if self.config.sink == "https":
            return HttpsSink(
                self.config,
                backoff=Backoff(
                    self.config.backoff_initial_s,
                    self.config.backoff_max_s,
                    random.Random(),
                ),
                sleep=self._stop.wait,
            )
        return MqttSink(self.config, on_downlink=self._on_downlink)

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self.sink.connected and self._connected_at is not None

    @property
    def in_flight(self) -> int:
        """Messages sent and not yet acknowledged."""
        return self._scanner.in_flight_count() + self._readings.in_flight_count()

    @property
    def budget_held_from(self) -> int | None:
        """The lowest priority held back by today's exhausted budget (None: nothing held)."""
        return self._budget_floor

    def start(self) -> SyncService:
        if self._thread is not None:
            raise RuntimeError("sync service already started")
        self._stop.clear()
        self._start_thread(self.run, "fieldpost-sync")
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to end and wait for it: by default long enough for the final flush to finish."""
        super().stop(10.0 + self.config.flush_on_stop_s if timeout is None else timeout)

    def run(self) -> None:
        """The loop; returns after stop(). ``start`` runs it on a thread, the CLI on the main one."""
        if not self.config.enabled:
            log.info("sync=disabled")
            self._stop.wait()
            return
        conn = connect(self.db_path)
        self._conn = conn
        try:
            self._load_budget(conn)
            while not self._stop.is_set():
                try:
                    self._follow_settings(conn)
                    if not self.sink.connected:
                        self._open()
                    timeout = self._fill(conn)
                    acked = self.sink.poll(timeout)
                    if acked:
                        self._commit(conn, acked)
                    self._check_ack_timeout()
                except SinkUnavailable as exc:
                    self._failed(conn, str(exc), probe=not exc.answered)
                except SinkRejected as exc:
                    self._failed(conn, f"rejected: {exc}", permanent=True)
                except sqlite3.Error as exc:
                    # Locked or full database: what was acked but not committed is simply sent again.
                    self._failed(conn, f"database: {exc}")
                except Exception as exc:  # a bug must not end sync for good: log it, back off, start over
                    log.exception("sync=%s event=internal_error", self.sink.name)
                    self._failed(conn, f"internal error: {exc!r}")
            self._flush_on_stop(conn)
        finally:
            self.sink.close()
            try:
                self._flush_bytes(conn)
            except sqlite3.Error as exc:
                log.error("sync=%s event=state_write_failed error=%r", self.sink.name, exc)
            conn.close()
            self._conn = None
            if self._own_codecs:
                self._codecs.close()

    # ------------------------------------------------------------------ steps

    def _open(self) -> None:
        self.sink.open()
        self._connected_at = time.monotonic()
        self._reset_scanners()
        self.reconnects += 1
        # The endpoint accepted us: a later drop starts the back-off from its first step again,
        # however briefly this connection lasts (a flapping broker is retried promptly).
        self._backoff.reset()

    def _reset_scanners(self) -> None:
        self._scanner.reset()
        self._readings.reset()

    def _flush_on_stop(self, conn: sqlite3.Connection) -> None:
        """After stop(): drain for at most ``flush_on_stop_s`` on the connection we already have.

        Only a healthy sink is used (down or backing off: stop at once; never a connection attempt
        here). Rows are still marked synced only on their ack; what is not acked by the deadline
        stays unsynced and goes after the next start.
        """
        limit = self.config.flush_on_stop_s
        if limit <= 0 or not self.connected:
            return
        started = time.monotonic()
        acked_before = self.messages_acked
        try:
            while (left := started + limit - time.monotonic()) > 0:
                self._fill(conn, final=True)
                if not self.in_flight:
                    break  # nothing left that may be sent, nothing awaiting its ack
                acked = self.sink.poll(min(left, self.config.poll_interval_s))
                if acked:
                    self._commit(conn, acked)
        except SinkUnavailable as exc:
            self._failed(conn, str(exc))
        except SinkRejected as exc:
            self._failed(conn, f"rejected: {exc}")
        except sqlite3.Error as exc:
            self._failed(conn, f"database: {exc}")
        except Exception as exc:  # shutdown must go on whatever happened
            log.exception("sync=%s event=internal_error", self.sink.name)
            self._failed(conn, f"internal error: {exc!r}")
        log.info(
            "sync=%s event=flushed_on_stop acked=%d unacked=%d seconds=%.3f",
            self.sink.name,
            self.messages_acked - acked_before,
            self.in_flight,
            time.monotonic() - started,
        )

    def _fill(self, conn: sqlite3.Connection, *, final: bool = False) -> float:
        """Send what may be sent now; return how long the next poll may wait.

        ``final`` (the flush on stop): partial batches go at once instead of waiting for company.
        """
        cfg = self.config
        free = self.sink.free_slots()
        # Refill when half the pipeline is free (or it is empty), not after every single ack:
        # each fill reads a window of rows, and reading it for one batch at a time is waste.
        if free == 0 or (free < max(1, cfg.max_inflight // 2) and self.in_flight):
            return cfg.poll_interval_s  # the next ack wakes the poll anyway
        now = self._clock()
        day = budget.utc_day(now)
        if self._budget_day is not None and self._budget_day != day:
            self._budget_floor = None
            self._budget_day = None
        # Read what the free part of the pipeline can take now: rows read and not sent are read
        # (and their documents built) again next time.
        window = min(_MAX_WINDOW, free * cfg.batch_max_messages)
        # Alarms and other outbox messages first, then readings from past the cursor.
        outbox_rows = self._scanner.next_rows(conn, window, below_priority=self._budget_floor)
        reading_rows: list[Message] = []
        room = window - len(outbox_rows)
        if room > 0 and (self._budget_floor is None or self._budget_floor > 1):
            reading_rows = self._readings.next_messages(conn, room, per_device=cfg.batch_max_messages)
        if not outbox_rows and not reading_rows:
            return cfg.poll_interval_s
        runs: dict[str | None, int] = {}
        for m in reading_rows:
            runs[m.device_id] = runs.get(m.device_id, 0) + 1
        more_beyond = (
            len(outbox_rows) >= window
            or len(outbox_rows) + len(reading_rows) >= window
            or any(n >= cfg.batch_max_messages for n in runs.values())
        )
        full, partial = build_batches(
            outbox_rows + [m for m in reading_rows if m.kind],
            self._route_of(),
            max_messages=cfg.batch_max_messages,
            max_bytes=cfg.batch_max_bytes,
        )
        wait = cfg.poll_interval_s
        # Alarms never wait for company: a partial alarm batch goes at once.
        urgent = [b for b in partial if b.priority == 0]
        partial = [b for b in partial if b.priority != 0]
        if more_beyond:
            # In the middle of a backlog: send full batches and let partial ones grow,
            # unless there is nothing else to send.
            candidates = urgent + (full or partial)
        else:
            # Batching by time: a partial batch goes once its oldest message has waited batch_max_wait_s.
            ripe_at = [b.oldest_created_at + cfg.batch_max_wait_s for b in partial]
            candidates = (
                urgent + full + [b for b, at in zip(partial, ripe_at, strict=True) if final or at <= now]
            )
            waiting = [at - now for at in ripe_at if at > now]
            if waiting:
                wait = min(wait, max(0.01, min(waiting)))
        # Send order: priority first, then outbox order (keeps each device's batches in sequence).
        candidates.sort(key=lambda b: b.messages[0].order_key)
        sent_outbox: set[int] = set()
        sent_readings: set[int] = set()
        for batch in candidates:
            if self.sink.free_slots() == 0:
                break
            if not self._budget_allows(batch, day):
                break
            try:
                nbytes = self.sink.submit(batch, now)
            except (SinkUnavailable, SinkRejected):
                # It went out (maybe in part) and failed: _failed counts it as an attempt.
                self._scanner.sent([m for m in batch.messages if m.source != "reading"])
                raise
            self._count_bytes(nbytes, day)
            self.batches_sent += 1
            sent_outbox.update(batch.outbox_ids)
            sent_readings.update(batch.reading_ids)
        self._scanner.handed_out(outbox_rows, sent_outbox)
        self._readings.handed_out(reading_rows, sent_readings)
        # Sent something and the pipeline has room: come straight back for more.
        return 0.0 if (sent_outbox or sent_readings) and self.sink.free_slots() > 0 else wait

    def _route_of(self) -> Callable:
        if self.config.sink == "https":
            return encoding.single_route
        if self.config.mqtt.profile == "thingsboard":
            return encoding.thingsboard_route
        return encoding.device_route

    def _budget_allows(self, batch: Batch, day: str) -> bool:
        cfg = self.config.budget
        if cfg.bytes_per_day <= 0:
            return True
        size = self.sink.wire_size(batch)
        used = self._used_today if self._used_day == day else 0
        if budget.allows(cfg, used, size, batch.priority):
            return True
        if self._budget_floor is None or batch.priority < self._budget_floor:
            self._budget_floor = batch.priority
            self._budget_day = day
            log.warning(
                "sync=budget event=exhausted priority=%d used=%d budget=%d until=next-utc-day",
                batch.priority,
                used,
                cfg.bytes_per_day,
            )
        return False

    def _count_bytes(self, nbytes: int, day: str) -> None:
        if self._used_day != day:
            self._used_day, self._used_today = day, 0
        self._used_today += nbytes
        self._unflushed_bytes += nbytes
        self.bytes_sent += nbytes

    def _load_budget(self, conn: sqlite3.Connection) -> None:
        now = self._clock()
        self._used_day = budget.utc_day(now)
        self._used_today = state.bytes_today(conn, self.sink.name, now)

    def _flush_bytes(self, conn: sqlite3.Connection) -> None:
        if self._unflushed_bytes:
            with transaction(conn):
                state.add_bytes(conn, self.sink.name, self._unflushed_bytes, self._clock())
            self._unflushed_bytes = 0

    def _commit(self, conn: sqlite3.Connection, acked: list[Batch]) -> None:
        now = self._clock()
        outbox_ids = [i for b in acked for i in b.outbox_ids]
        reading_ids = [i for b in acked for i in b.reading_ids]
        moves = self._readings.acked(reading_ids)
        with transaction(conn):
            mark_synced(conn, outbox_ids, now)
            settled = self._readings.settle(conn, moves)
            state.record_success(conn, self.sink.name, now)
            if self._unflushed_bytes:
                state.add_bytes(conn, self.sink.name, self._unflushed_bytes, now)
        self._unflushed_bytes = 0
        self._scanner.acked(outbox_ids)
        self.messages_acked += len(outbox_ids) + len(reading_ids)
        if self._on_synced is not None:
            self._on_synced(len(outbox_ids) + settled)
        self._backoff.reset()

    def _check_ack_timeout(self) -> None:
        since = self.sink.oldest_unacked_since()
        if since is not None and time.monotonic() - since > self.config.ack_timeout_s:
            raise SinkUnavailable(f"no acknowledgement within {self.config.ack_timeout_s}s")

    def _failed(
        self, conn: sqlite3.Connection, error: str, *, permanent: bool = False, probe: bool = False
    ) -> None:
        """Record the failure, forget what was in flight, back off. ``probe``: the endpoint could
        not be reached, so looking whether it can be again may end the back-off early."""
        now = self._clock()
        log.warning("sync=%s event=error error=%r", self.sink.name, error)
        self.sink.close()
        try:
            if conn.in_transaction:  # a COMMIT that failed leaves its transaction open
                conn.execute("ROLLBACK")
            with transaction(conn):
                state.record_error(conn, self.sink.name, error, now)
                count_attempt(conn, self._scanner.inflight)
                if self._unflushed_bytes:
                    state.add_bytes(conn, self.sink.name, self._unflushed_bytes, now)
            self._unflushed_bytes = 0
        except sqlite3.Error as exc:  # the error itself cannot be recorded: the log must do
            log.error("sync=%s event=state_write_failed error=%r", self.sink.name, exc)
        self._reset_scanners()
        self._connected_at = None
        delay = self._backoff.hold_max() if permanent else self._backoff.next_delay()
        log.info("sync=%s event=backoff delay=%.3f", self.sink.name, delay)
        self._back_off(conn, delay, probe=probe and not permanent)

    # ------------------------------------------------------------------ panel settings

    def _settings_poll(self, conn: sqlite3.Connection) -> None:
        """At most every ``settings_poll_s``: note whether the panel changed the endpoint."""
        if self._settings is None or time.monotonic() < self._settings_due:
            return
        self._settings_due = time.monotonic() + self._settings_poll_s
        stored = self._settings.poll(conn)
        if stored is not None:
            self._pending_config = sync_config_with(self.base_config, stored)
            self._settings_changed = self._pending_config != self.config

    def _follow_settings(self, conn: sqlite3.Connection) -> None:
        """Switch to the endpoint the panel set (or back to the config file's) between two cycles.

        What was sent and not yet acknowledged stays unsynced in the outbox and goes to the new
        endpoint: at least once, as after any reconnect.
        """
        self._settings_poll(conn)
        if not self._settings_changed:
            return
        self._settings_changed = False
        new = self._pending_config
        log.warning(
            "sync=settings event=endpoint_changed from=%s to=%s",
            describe_endpoint(self.config),
            describe_endpoint(new),
        )
        self._flush_bytes(conn)
        self.sink.close()
        previous, self.config = self.config, new
        try:
            self.sink = self._make_sink()
        except Exception as exc:  # e.g. an https URL its sink refuses: stay where we were
            log.error("settings=ignored key=%s error=%r", ENDPOINT_KEY, str(exc))
            self.config = previous
            self.sink = self._make_sink()
        self._reset_scanners()
        self._connected_at = None
        self._backoff.reset()
        self._load_budget(conn)

    def _back_off(self, conn: sqlite3.Connection, delay: float, *, probe: bool = False) -> None:
        """Wait ``delay`` after a failure, but stop waiting as soon as the panel changes the endpoint
        (the usual fix for a failing one) or a probe finds the endpoint answering again."""
        next_probe = time.monotonic() + min(PROBE_EVERY_S, delay)

        def worth_trying() -> bool:
            nonlocal next_probe
            if self._settings is not None:
                try:
                    self._settings_poll(conn)
                except sqlite3.Error as exc:
                    log.error("sync=%s event=settings_read_failed error=%r", self.sink.name, exc)
                if self._settings_changed:
                    return True
            if probe and time.monotonic() >= next_probe:
                next_probe = time.monotonic() + PROBE_EVERY_S
                if self.sink.reachable(timeout=min(1.0, PROBE_EVERY_S)):
                    log.info("sync=%s event=endpoint_answers action=retry_now", self.sink.name)
                    return True
            return False

        poll_s = min(PROBE_EVERY_S, self._settings_poll_s if self._settings is not None else PROBE_EVERY_S)
        self._sleep_unless_changed(delay, poll_s, worth_trying)

    # ------------------------------------------------------------------ downlinks (called inside poll)

    def _on_downlink(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        assert self._conn is not None
        handler = make_handler(
            self._conn,
            profile=self.config.mqtt.profile,
            prefix=self.config.mqtt.topic_prefix,
            site=self.config.site,
            clock=self._clock,
        )
        return handler(topic, payload)


def attach(daemon: Any) -> SyncService | None:
    """The daemon's attach point (edge.daemon.ATTACH_POINTS): start sync when [sync] is configured.

    No ``[sync]`` section means no cloud: nothing is started and the outbox just keeps
    growing (retention and backpressure still apply).
    """
    from edge.sync.metrics import sync_families

    if "sync" not in daemon.config.given and not _panel_endpoint(daemon.db_path):
        log.info("sync=off reason='no [sync] section and no endpoint set in the panel'")
        return None
    backpressure = daemon.backpressure
    service = SyncService(
        daemon.db_path,
        daemon.config.sync,
        clock=daemon.clock,
        site=daemon.config.edge.site,
        on_synced=None if backpressure is None else backpressure.synced,
        codecs=daemon.codecs,
    )
    if not service.config.enabled:
        log.info("sync=off reason='sync.enabled = false'")
        return None
    service.start()
    daemon.add_closer(service.stop)
    daemon.metrics_sources.extra.append(lambda: sync_families(daemon.db_path, service, daemon.clock))
    return service


def _panel_endpoint(db_path: str | Path) -> str:
    """The endpoint an admin stored in the panel ('' when none). Without a [sync] section it alone
    starts sync (with the defaults of docs/sync.md: TLS, system trust store); read once at start."""
    from edge.sync.panel_settings import read_settings

    conn = connect(db_path)
    try:
        value = read_settings(conn, [ENDPOINT_KEY]).get(ENDPOINT_KEY)
    finally:
        conn.close()
    return value if isinstance(value, str) else ""
