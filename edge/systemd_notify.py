"""Readiness, watchdog and stopping messages to systemd (sd_notify(3)), without libsystemd.

Under a ``Type=notify`` unit systemd passes ``$NOTIFY_SOCKET``: a datagram socket that
takes ``READY=1``, ``STATUS=...``, ``WATCHDOG=1`` and ``STOPPING=1`` lines. With
``WatchdogSec=`` it also passes ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``); a service
that stays silent for that long is killed and restarted. Outside systemd there is no
socket and every call here does nothing, so the daemon needs no special case.

The watchdog pings only while every liveness check passes: a wedged ingest writer or a
dead link or sync thread stops the pings, and systemd restarts the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

from edge.logs import kv

log = logging.getLogger("fieldpost.systemd")

Check = Callable[[], bool]


class Notifier:
    """Sends sd_notify messages to ``socket_path`` (None: outside systemd, every call a no-op)."""

    def __init__(self, socket_path: str | None, *, watchdog_s: float | None = None):
        self.socket_path = socket_path or None
        self.watchdog_s = watchdog_s  # systemd's WatchdogSec=, None when the unit has none
        self._watchdog: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, pid: int | None = None) -> Notifier:
        env = os.environ if env is None else env
        return cls(env.get("NOTIFY_SOCKET"), watchdog_s=watchdog_seconds(env, pid=pid))

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def send(self, *lines: str) -> bool:
        """One datagram with ``lines``; False (and a log line) when it could not be sent."""
        if self.socket_path is None:
            return False
        address = self.socket_path
        if address.startswith("@"):  # an abstract socket, as systemd writes it
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(1.0)  # a reader that stopped reading must not hang the daemon's shutdown
                sock.connect(address)
                sock.sendall("\n".join(lines).encode())
            return True
        except OSError as exc:  # systemd gone or the socket unreadable: never fatal for the daemon
            log.warning("sd_notify failed %s", kv(socket=self.socket_path, error=exc))
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self, status: str = "") -> bool:
        self.stop_watchdog()
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def start_watchdog(self, checks: Mapping[str, Check]) -> bool:
        """Ping every half WatchdogSec= while every check in ``checks`` answers True."""
        if self.socket_path is None or not self.watchdog_s or self._watchdog is not None:
            return False
        self._stop.clear()
        self._watchdog = threading.Thread(
            target=self._run_watchdog, args=(dict(checks),), name="fieldpost-watchdog", daemon=True
        )
        self._watchdog.start()
        return True

    def stop_watchdog(self) -> None:
        self._stop.set()
        thread, self._watchdog = self._watchdog, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def _run_watchdog(self, checks: dict[str, Check]) -> None:
        # Half the timeout, as sd_watchdog_enabled(3) advises: one late ping is not yet fatal.
        every = (self.watchdog_s or 0.0) / 2  # only started with a watchdog (see start_watchdog)
        failing: list[str] = []
        while not self._stop.wait(every):
            now_failing = [name for name, check in checks.items() if not _passes(check)]
            if now_failing != failing:
                if now_failing:
                    log.error("watchdog pings withheld %s", kv(failing=",".join(now_failing)))
                else:
                    log.warning("watchdog pings resumed")
                failing = now_failing
            if not failing and not self._stop.is_set():
                self.send("WATCHDOG=1")


def _passes(check: Check) -> bool:
    try:
        return bool(check())
    except Exception:  # a check that raises is a failing part, not a dead watchdog thread
        log.exception("watchdog check failed")
        return False


def watchdog_seconds(env: Mapping[str, str], *, pid: int | None = None) -> float | None:
    """WatchdogSec= from ``$WATCHDOG_USEC``, if it is meant for this process (``$WATCHDOG_PID``)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None  # set for a parent (a wrapper script): not ours to answer
    return usec / 1_000_000


class WriterProbe:
    """Is the ingest writer alive *and* working? A no-op call through its queue must come back.

    A thread can be alive yet wedged (a hung fsync, a lock never released); only a round
    trip through the writer's own queue shows it still commits. One probe is in flight at
    a time, so a wedged writer does not collect a pile of them.
    """

    def __init__(self, submit_call: Callable[..., None], *, timeout_s: float):
        self._submit_call = submit_call
        self._timeout = timeout_s
        self._pending: threading.Event | None = None

    def __call__(self) -> bool:
        if self._pending is None or self._pending.is_set():
            done = threading.Event()
            self._pending = done
            self._submit_call(lambda conn, now: None, done.set)
        return self._pending.wait(self._timeout)
