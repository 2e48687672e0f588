"""Retention on a timer, in the daemon: its own thread and connection, the panel's settings followed.

The deletes go through the ingest writer (``Ingestor.run``) when there is one, so they take
turns with uplink batches instead of contending for the write lock; a full disk asks for a
pass at once (edge.store.space).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.store.connection import connect
from edge.store.retention import (
    SETTING_KEYS,
    RetentionPolicy,
    RetentionReport,
    Runner,
    apply_retention,
    policy_with_settings,
)
from edge.sync.panel_settings import SettingsWatch
from edge.sync.worker_thread import ThreadedLoop

log = logging.getLogger("fieldpost.retention")


class RetentionWorker(ThreadedLoop):
    """Runs ``apply_retention`` every ``policy.interval_s`` on its own thread and connection.

    ``policy`` is the config file's; with ``panel_settings`` the worker lays the panel's stored values
    over it at start and looks for changes every ``settings_poll_s`` (one small query), running a pass
    at once with the new policy when they change. ``run`` carries the pass's writes (see
    :func:`edge.store.retention.apply_retention`); None: transactions on the worker's own connection.
    """

    def __init__(
        self,
        db_path: str | Path,
        policy: RetentionPolicy,
        clock: Callable[[], float] = time.time,
        *,
        panel_settings: bool = True,
        settings_poll_s: float = 5.0,
        run: Runner | None = None,
    ):
        self.db_path = Path(db_path)
        self.base_policy = policy
        self.policy = policy
        self._clock = clock
        self._run_step = run
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._now = threading.Event()
        self.last_report: RetentionReport | None = None
        self.passes = 0
        self._settings = SettingsWatch(SETTING_KEYS) if panel_settings else None
        self._settings_poll_s = settings_poll_s

    def start(self) -> RetentionWorker:
        self._start_thread(self._loop, "fieldpost-retention")
        return self

    def wake(self) -> None:
        """Run a pass now (the disk is full, or someone freed space)."""
        self._now.set()

    def _loop(self) -> None:
        conn = connect(self.db_path)
        try:
            while not self._stop.is_set():
                self._now.clear()
                try:
                    self._follow_settings(conn)
                    self.last_report = apply_retention(
                        conn, self.policy, now=self._clock(), run=self._run_step, stop=self._stop.is_set
                    )
                    self.passes += 1
                except (sqlite3.Error, TimeoutError):
                    log.exception("retention=error")
                self._wait(conn, self.policy.interval_s)
        finally:
            conn.close()

    def _follow_settings(self, conn: sqlite3.Connection) -> bool:
        """Take up the panel's values if they changed; True when the policy changed."""
        if self._settings is None:
            return False
        stored = self._settings.poll(conn)
        if stored is None:
            return False
        policy = policy_with_settings(self.base_policy, stored)
        if policy == self.policy:
            return False
        log.info(
            "retention=settings max_age_s=%s max_db_bytes=%s (config file: %s, %s)",
            policy.max_age_s,
            policy.max_db_bytes,
            self.base_policy.max_age_s,
            self.base_policy.max_db_bytes,
        )
        self.policy = policy
        return True

    def _wait(self, conn: sqlite3.Connection, delay: float) -> None:
        """Sleep until the next pass, until the panel changes the policy, or until woken."""

        def due_now() -> bool:
            if self._now.is_set():
                return True
            try:
                return self._follow_settings(conn)
            except sqlite3.Error:
                log.exception("retention=settings_read_failed")
                return False

        self._sleep_unless_changed(delay, self._settings_poll_s if self._settings else 0.5, due_now)


def attach(daemon: Any) -> RetentionWorker:
    """The daemon's attach point: run the ``[retention]`` policy on its own thread."""
    policy = daemon.config.retention.policy()
    ingest = daemon.ingest
    worker = RetentionWorker(
        daemon.db_path,
        policy,
        daemon.clock,
        run=None if ingest is None else (lambda fn: ingest.run(fn, timeout=60.0)),
    ).start()
    if daemon.space is not None:
        daemon.space.on_full.append(worker.wake)
    daemon.add_closer(worker.stop)
    return worker
