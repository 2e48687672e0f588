"""The edge daemon (`fieldpost run`): links -> ingest -> SQLite, plus /health and /metrics.

Start order: database (migrated), ingest writer, HTTP status server, other areas'
services (attach points), link manager. Stop order (SIGTERM/SIGINT): refuse new
uplinks (NACK BUSY), let the writer commit and ACK everything it holds, close the
ports, stop the services, close the database. A kill -9 at any moment loses nothing
that was ACKed: ACKs only ever follow a committed, fsync'd transaction.
"""

from __future__ import annotations

import faulthandler
import functools
import importlib
import importlib.metadata
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge import alarms, bridge_downlinks, downlinks, preflight, runlock
from edge.codecs import CodecRunner
from edge.config import Config
from edge.fuota import jobs as fuota_jobs
from edge.fuota.serial import ActiveUpdates, SerialUpdates
from edge.ingest import Backpressure, Ingestor
from edge.link.manager import LinkManager
from edge.logs import kv
from edge.lorawan import server as lorawan_server
from edge.lorawan.network import Network
from edge.metrics import Sources, StatusServer, make_registry
from edge.store import connect, migrate
from edge.store.connection import WRITER_CACHE_KIB
from edge.store.numbers import Numbers
from edge.store.space import SpaceGuard
from edge.systemd_notify import Check, Notifier, WriterProbe

log = logging.getLogger("fieldpost.daemon")

BACKLOG_RECOUNT_S = 5.0  # the backlog figure is kept in memory; recounted from the database this often
SPACE_CHECK_S = 1.0  # while the disk is full: how often to look whether space is back
CHECKPOINT_S = 1.0  # how often the WAL is written back into the database file


@functools.cache
def _version() -> str:
    try:
        return importlib.metadata.version("fieldpost")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


# Other areas hook in here: "module:function" called as function(daemon) at start-up, if the
# module exists. The function may call daemon.add_hook / add_periodic / add_closer and add
# metric families to daemon.metrics_sources.extra.
ATTACH_POINTS = (
    "edge.rules.service:attach",
    "edge.sync.service:attach",
    "edge.store.retention_worker:attach",
    "edge.backup.service:attach",
    "edge.homeassistant.service:attach",
    "edge.gpio.service:attach",
    "webui.service:attach",
    "edge.sources.service:attach",
)


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        attach_points: tuple[str, ...] = ATTACH_POINTS,
        notifier: Notifier | None = None,
        **manager_overrides: Any,
    ):
        self.config = config
        self.clock = clock
        self.db_path = Path(config.edge.db)
        self._attach_points = attach_points
        self._manager_overrides = manager_overrides
        self._stopping = False
        self._stopped = threading.Event()
        self._periodic: list[tuple[float, Callable[[], None]]] = []
        self._closers: list[Callable[[], None]] = []
        self._hooks: list[Callable] = []
        # systemd: READY=1 once up, WATCHDOG=1 while every liveness check passes, STOPPING=1
        self.notifier = notifier if notifier is not None else Notifier.from_env()
        self._liveness: dict[str, Check] = {}
        self.services: dict[str, Any] = {}  # what each attach point returned, by module name
        self.metrics_sources = Sources(db_path=str(self.db_path))
        self.conn: sqlite3.Connection | None = None
        self.ingest: Ingestor | None = None
        self.manager: LinkManager | None = None
        self.http: StatusServer | None = None
        self.backpressure: Backpressure | None = None
        self.space: SpaceGuard | None = None
        self.numbers = Numbers()  # device id <-> number, shared by everything in this process
        # Decoding stored payloads (sync, rules, panel share it): one plug-in codec worker at most.
        self.codecs = CodecRunner(timeout_s=config.ingest.codec_timeout_s)
        self._reader: sqlite3.Connection | None = (
            None  # a read connection for the timer's counts (never the writer's)
        )
        self._disk_alarm: int | None = None
        self._raising_disk_alarm = False
        self._timer: threading.Thread | None = None
        self._bridge_probe: bridge_downlinks.QueuedProbe | None = None
        self._active_updates: ActiveUpdates | None = None
        self._runlock: runlock.RunLock | None = None

    # --- for other areas --------------------------------------------------------------------

    def add_hook(self, hook: Callable) -> None:
        """``hook(readings)`` after each commit that stored readings (edge.ingest.CommittedReading)."""
        self._hooks.append(hook)
        if self.ingest is not None:
            self.ingest.add_hook(hook)

    def add_periodic(self, every_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` every ``every_s`` seconds on the daemon's timer thread (errors are logged)."""
        self._periodic.append((every_s, fn))

    def add_closer(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def busy(self) -> str | None:
        """Why new uplinks should be refused now (stopping, disk full, backlog), or None: for sources
        other than the links (edge.sources), which answer "busy" in their own protocol."""
        return self._busy()

    def add_liveness(self, name: str, check: Check) -> None:
        """``check()`` must answer True for systemd's watchdog to be fed (see edge.systemd_notify)."""
        self._liveness[name] = check

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> Daemon:
        cfg = self.config
        preflight.check_database(self.db_path)  # a clear message instead of SQLite's "readonly database"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._runlock = runlock.RunLock(self.db_path).acquire()  # `fieldpost db restore` waits for us
        self.conn = connect(self.db_path, cache_kib=WRITER_CACHE_KIB)
        applied = migrate(self.conn)
        if applied:
            log.info("db migrated %s", kv(db=self.db_path, applied=",".join(applied)))
        # The writer never checkpoints: a checkpoint copies the WAL into the file and fsyncs it, which
        # on an SD card can take longer than any ACK may wait. The timer does it (PASSIVE: alongside
        # the writer, never blocking it).
        self.conn.execute("PRAGMA wal_autocheckpoint=0")
        self.space = SpaceGuard(self.db_path, reserve_bytes=int(cfg.edge.disk_reserve_mb * 1024 * 1024))
        self.space.prepare()
        self.backpressure = Backpressure(
            high_water=cfg.ingest.high_water, resume_below=cfg.ingest.resume_below
        )
        self._reader = connect(self.db_path)
        self.backpressure.refresh(self._reader)
        self.ingest = Ingestor(
            self.conn,
            backpressure=self.backpressure,
            clock=self.clock,
            batch_max=cfg.ingest.batch_max,
            batch_wait_s=cfg.ingest.batch_wait_ms / 1000,
            on_commit_failed=self._commit_failed,
            on_batch=lambda _outcomes, _elapsed: self.space.committed() if self.space else None,
            numbers=self.numbers,
            network=Network(cfg.lorawan),
        )
        for hook in self._hooks:
            self.ingest.add_hook(hook)
        self.ingest.start()
        self.metrics_sources.ingest = self.ingest
        self.metrics_sources.backpressure = self.backpressure
        self.add_periodic(cfg.edge.expire_interval_s, self._expire_downlinks)
        self.add_periodic(cfg.updates.check_interval_s, self._expire_updates)
        self.add_periodic(BACKLOG_RECOUNT_S, self._recount_backlog)
        self.add_periodic(SPACE_CHECK_S, self._check_space)
        self.add_periodic(CHECKPOINT_S, self._checkpoint)
        if cfg.edge.services:
            self._attach()
        if cfg.http.enabled:
            self.http = StatusServer(
                make_registry(self.metrics_sources), self.health, host=cfg.http.host, port=cfg.http.port
            ).start()
        link = cfg.link
        options = {
            "ports": link.ports,
            "discover_ports": link.discover,
            "usb_ids": link.usb_ids,
            "baudrate": link.baudrate,
            "window": link.window,
            "reconnect_min_s": link.reconnect_min_s,
            "reconnect_max_s": link.reconnect_max_s,
            "scan_interval_s": link.scan_interval_s,
            "clock": self.clock,  # a bridge's own downlinks are dropped from memory past their expiry
        }
        # which connected bridges have commands queued: read aside, not through the ingest writer
        self._bridge_probe = bridge_downlinks.QueuedProbe(self.db_path, clock=self.clock)
        options["queued"] = self._bridge_probe
        self._active_updates = ActiveUpdates(self.db_path)
        options["updates"] = SerialUpdates(read=self._active_updates, submit=self.ingest.submit_call)
        options.update(self._manager_overrides)
        self.manager = LinkManager(ingest=self.ingest, busy=self._busy, hello=self._hello, **options)
        self.metrics_sources.ports = self.manager.figures
        self.manager.start()
        self._timer = threading.Thread(target=self._run_timer, name="fieldpost-timer", daemon=True)
        self._timer.start()
        self._notify_ready()
        log.info(
            "edge started %s",
            kv(
                version=_version(),
                db=self.db_path,
                ports=",".join(link.ports) or "-",
                discover=link.discover,
                http=f"{self.http.host}:{self.http.port}" if self.http else "off",
            ),
        )
        return self

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True  # from here every new uplink gets NACK BUSY: the module keeps it
        self.notifier.stopping()
        log.info("edge stopping")
        if self.ingest is not None:
            self.ingest.stop()  # commit and ACK what was handed in
        if self.manager is not None:
            self.manager.stop()
        if self._bridge_probe is not None:
            self._bridge_probe.close()
        if self._active_updates is not None:
            self._active_updates.close()
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # one service's failure must not keep the database open
                log.exception("closer failed")
        if self.http is not None:
            self.http.stop()
        self.codecs.close()
        if self._reader is not None:
            self._reader.close()
        if self.conn is not None:
            self.conn.close()
        if self._runlock is not None:
            self._runlock.release()
        self._stopped.set()
        log.info("edge stopped")

    def run_forever(self) -> None:
        """Start, then serve until SIGTERM or SIGINT; then stop cleanly."""
        done = threading.Event()

        def on_signal(signum, _frame):
            log.info("signal %s", kv(signal=signal.Signals(signum).name))
            done.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not done.wait(1):
                pass
        finally:
            self.stop()
            for s, handler in previous.items():
                signal.signal(s, handler)

    # --- internals --------------------------------------------------------------------------

    def _busy(self) -> str | None:
        # Asked for every frame a link receives: the common answer (not busy) takes two attribute looks.
        if self._stopping:
            return "edge shutting down"
        space = self.space
        if space is not None and space.refusing:
            reason = space.busy()
            if reason:
                return reason
        backpressure = self.backpressure
        return backpressure.busy() if backpressure is not None and backpressure.is_busy else None

    def _commit_failed(self, exc: Exception) -> str:
        assert self.space is not None
        return self.space.commit_failed(exc)

    def _checkpoint(self) -> None:
        if self._reader is not None:
            self._reader.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _recount_backlog(self) -> None:
        if self.backpressure is not None and self._reader is not None:
            self.backpressure.refresh(self._reader)

    def _check_space(self) -> None:
        """Raise the disk_full alarm while the disk is full; clear it once space is back."""
        space, ingest = self.space, self.ingest
        if space is None or ingest is None:
            return
        if space.check() or (not space.full and self._disk_alarm is not None):
            alarm_id = self._disk_alarm
            if alarm_id is not None:
                ingest.submit_call(
                    lambda conn, now: alarms.clear(conn, alarm_id, now=now),
                    reply=lambda: setattr(self, "_disk_alarm", None),
                )
        elif space.full and self._disk_alarm is None and not self._raising_disk_alarm:
            raised: list[int] = []
            reason = space.degraded() or "disk full"
            self._raising_disk_alarm = True

            def raise_it(conn, now) -> None:
                raised.append(
                    alarms.raise_alarm(
                        conn,
                        rule="disk_full",
                        device_id=None,
                        severity="critical",
                        message=f"the edge cannot store readings ({reason}); modules keep them meanwhile",
                        now=now,
                    )
                )

            def done() -> None:
                self._disk_alarm = raised[0] if raised else None
                self._raising_disk_alarm = False

            ingest.submit_call(raise_it, reply=done)

    def _hello(self) -> dict[str, Any]:
        # "rx": the receive windows the join accepts announce, for a bridge to time downlinks
        return {
            "edge": _version(),
            "time": int(self.clock()),
            "rx": lorawan_server.windows(self.config.lorawan),
        }

    def health(self) -> tuple[str, dict[str, Any]]:
        """("ok" | "degraded" | "failing", details) for /health."""
        writer_ok = self.ingest is not None and self.ingest.running
        ports = self.manager.figures() if self.manager is not None else []
        degraded = self.space.degraded() if self.space is not None else None
        detail = {
            "version": _version(),
            "writer": "running" if writer_ok else "stopped",
            "links_up": sum(1 for p in ports if p["up"]),
            "ports": [{"path": p["path"], "up": p["up"], "peer": p["peer_id"]} for p in ports],
            "backlog": self.backpressure.unsynced if self.backpressure else None,
            "busy": bool(self.backpressure and self.backpressure.is_busy),
            "ingest_pending": self.ingest.pending() if self.ingest else 0,
        }
        if not writer_ok or self._stopping:
            return "failing", detail
        if degraded:
            return "degraded", {**detail, "reason": degraded}
        return "ok", detail

    def _notify_ready(self) -> None:
        """Database open and migrated, writer and links started: tell systemd, and feed its watchdog."""
        if not self.notifier.enabled or self.ingest is None:
            return
        probe_s = max(0.05, min(5.0, (self.notifier.watchdog_s or 4.0) / 4))
        checks: dict[str, Check] = {
            "writer": WriterProbe(self.ingest.submit_call, timeout_s=probe_s),
            "links": self._links_alive,
        }
        self.notifier.ready(status=f"storing readings in {self.db_path}")
        self.notifier.start_watchdog({**checks, **self._liveness})

    def _links_alive(self) -> bool:
        return self.manager is not None and self.manager.alive

    def _expire_downlinks(self) -> None:
        if self.ingest is not None:
            self.ingest.submit_call(lambda conn, now: downlinks.expire(conn, now=now))

    def _expire_updates(self) -> None:
        timeout_h = self.config.updates.stall_timeout_h
        if self.ingest is None or timeout_h <= 0:
            return

        def expire(conn: sqlite3.Connection, now: float) -> None:  # ``now``: the daemon's clock
            for job in fuota_jobs.expire_stalled(conn, timeout_h=timeout_h, now=now):
                log.warning(
                    "module update failed %s",
                    kv(job=job.id, device=job.device_id, error=fuota_jobs.stall_reason(timeout_h)),
                )

        self.ingest.submit_call(expire)

    def _run_timer(self) -> None:
        next_run = [time.monotonic() + every for every, _ in self._periodic]
        while not self._stopping:
            now = time.monotonic()
            for i, (every, fn) in enumerate(list(self._periodic)):
                if i >= len(next_run):
                    next_run.append(now + every)
                if now >= next_run[i]:
                    next_run[i] = now + every
                    try:
                        fn()
                    except Exception:  # a periodic job's bug must not stop the others
                        log.exception("periodic job failed %s", kv(job=getattr(fn, "__name__", fn)))
            time.sleep(0.2)

    def _attach(self) -> None:
        for point in self._attach_points:
            module_name, func_name = point.split(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name and module_name.startswith(exc.name):
                    continue  # that area has no service module (yet)
                raise
            attach = getattr(module, func_name, None)
            if attach is None:
                continue  # the module exists but does not (yet) offer an attach point
            service = self.services[module_name] = attach(self)
            if hasattr(service, "alive"):  # a service with its own thread: the watchdog watches it too
                self.add_liveness(module_name, _alive_of(service))
            log.info("attached %s", kv(service=point))


def _alive_of(service: Any) -> Check:
    return lambda: bool(service.alive)


def main(argv: list[str] | None = None) -> None:
    """``python -m edge.daemon [--config FILE]``: the daemon without the CLI (what systemd may run)."""
    import argparse

    from edge import config as config_mod
    from edge import logs

    parser = argparse.ArgumentParser(prog="python -m edge.daemon", description=main.__doc__)
    parser.add_argument(
        "--config",
        help="TOML configuration file (default: FIELDPOST_CONFIG or /etc/fieldpost/fieldpost.toml)",
    )
    args = parser.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>`: every thread's stack to stderr
    cfg = config_mod.load(args.config)
    config_mod.check_db_folder(cfg)
    logs.setup(cfg.log.level, timestamps=cfg.log.timestamps)
    Daemon(cfg).run_forever()


if __name__ == "__main__":
    main()
