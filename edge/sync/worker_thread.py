"""start/stop of a service whose loop runs on one daemon thread until its stop event is set, and the
wait between its rounds that a change of the panel's settings cuts short.

Shared by the sync service and the retention worker so that both start, wait and shut down the same
way (the daemon closes them one after the other; neither may hold shutdown up for a whole interval).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ThreadedLoop:
    """Mixin: the owner sets ``self._stop = threading.Event()`` and ``self._thread = None`` in __init__,
    and its loop returns soon after ``_stop`` is set."""

    _stop: threading.Event
    _thread: threading.Thread | None

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        # daemon: a loop stuck on I/O must never keep the process alive after the daemon exits.
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """The loop's thread is running (the daemon's systemd watchdog checks it)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end and wait up to ``timeout`` seconds for its thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _sleep_unless_changed(self, delay: float, poll_s: float | None, changed: Callable[[], bool]) -> None:
        """Sleep up to ``delay`` seconds, returning at once on stop(). With ``poll_s`` (None: do not look),
        call ``changed()`` every ``poll_s`` seconds and return as soon as it answers True."""
        deadline = time.monotonic() + delay
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if poll_s is None:
                self._stop.wait(left)
                return
            self._stop.wait(min(left, poll_s))
            if changed():
                return
