"""A line-noise proxy between a serial device and the edge, for reliability tests.

It opens ``upstream`` (e.g. a virtual module's pty) and offers a new pty at ``port``;
bytes are copied both ways and a seeded fraction of them is corrupted (XOR with a random
non-zero value), so a test can put the link through a noisy cable reproducibly.
"""

from __future__ import annotations

import logging
import os
import random
import select
import termios
import threading
import tty
from typing import Self

from edge.sim.module import open_raw_pty

log = logging.getLogger("fieldpost.sim")


class CorruptingProxy:
    def __init__(self, upstream: str, rate: float, *, seed: int = 0, directions: str = "both"):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate {rate} out of range 0..1")
        if directions not in ("both", "up", "down"):
            raise ValueError("directions is 'both', 'up' (edge->device) or 'down' (device->edge)")
        self.upstream = upstream
        self.rate = rate
        self.directions = directions
        self._rng = random.Random(seed)
        self.bytes_copied = 0
        self.corrupted = 0
        self._up_fd: int | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self.port: str | None = None
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._up_fd = os.open(self.upstream, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self._up_fd, termios.TCSANOW)
        self._master, self._slave, self.port = open_raw_pty()
        os.set_blocking(self._master, False)
        self._thread = threading.Thread(target=self._run, name="corrupting-proxy", daemon=True)
        self._thread.start()
        return self

    def _mangle(self, data: bytes, enabled: bool) -> bytes:
        if not enabled or self.rate == 0.0:
            return data
        out = bytearray(data)
        rng = self._rng
        for i in range(len(out)):
            if rng.random() < self.rate:
                out[i] ^= rng.randrange(1, 256)
                self.corrupted += 1
        return bytes(out)

    def _run(self) -> None:
        up, down = self._up_fd, self._master
        if up is None or down is None:
            return  # closed before the thread got going
        pending = {up: b"", down: b""}  # bytes waiting to be written to that fd
        try:
            while True:
                wants_write = [fd for fd, data in pending.items() if data]
                readable, writable, _ = select.select([up, down, self._stop_r], wants_write, [], 1.0)
                if self._stop_r in readable:
                    return
                for src in readable:
                    try:
                        data = os.read(src, 4096)
                    except BlockingIOError:
                        continue
                    except OSError:  # the other end went away (EIO): stop copying
                        return
                    if not data:
                        return
                    self.bytes_copied += len(data)
                    if src == up:  # device -> edge
                        pending[down] += self._mangle(data, self.directions in ("both", "down"))
                    else:
                        pending[up] += self._mangle(data, self.directions in ("both", "up"))
                for dst in writable:
                    try:
                        n = os.write(dst, pending[dst])
                    except BlockingIOError:
                        continue
                    except OSError:
                        return
                    pending[dst] = pending[dst][n:]
        finally:
            log.debug("proxy.stopped copied=%d corrupted=%d", self.bytes_copied, self.corrupted)

    def close(self) -> None:
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._up_fd, self._master, self._slave, self._stop_r, self._stop_w):
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._up_fd = self._master = self._slave = None
        self._stop_r = self._stop_w = -1  # closed

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
