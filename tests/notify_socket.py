"""The receiving end of sd_notify(3), as systemd has it: a datagram socket the test passes as NOTIFY_SOCKET.

Every datagram is kept with the time it arrived, so tests can ask what came, in which
order, and whether the watchdog pings stopped or started again.

The address is a file path, or "@name" for an abstract socket (as systemd also accepts): no
file, no 108-byte path limit, and reachable from a chroot that shares the network namespace.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Message:
    at: float  # time.monotonic() on arrival
    fields: dict[str, str]

    def has(self, line: str) -> bool:
        key, _, value = line.partition("=")
        return self.fields.get(key) == value


class NotifyListener:
    def __init__(self, address: Path | str, on_message=None):
        self.path = str(address)  # what NOTIFY_SOCKET is set to
        self.messages: list[Message] = []
        self._on_message = on_message  # called on the listener's thread as each message arrives
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + self.path[1:] if self.path.startswith("@") else self.path)
        self._sock.settimeout(0.1)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-listener", daemon=True)
        self._thread.start()

    @classmethod
    def abstract(cls, on_message=None) -> NotifyListener:
        return cls(f"@fieldpost-test-{uuid.uuid4().hex}", on_message=on_message)

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.partition("=")[::2] for line in data.decode().splitlines() if "=" in line)
            message = Message(time.monotonic(), fields)
            if self._on_message is not None:
                self._on_message(message)
            with self._lock:
                self.messages.append(message)

    def snapshot(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def with_line(self, line: str) -> list[Message]:
        return [m for m in self.snapshot() if m.has(line)]

    def wait_for(self, line: str, timeout: float = 10.0, *, after: float = float("-inf")) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.with_line(line):
                if message.at > after:
                    return message
            time.sleep(0.01)
        raise AssertionError(f"no {line} on {self.path} within {timeout}s; got {self.snapshot()}")

    def pings_since(self, since: float) -> int:
        return sum(1 for m in self.with_line("WATCHDOG=1") if m.at > since)

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        self._thread.join(2)
