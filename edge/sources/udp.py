"""The UDP listener: one datagram is one radio frame; the ACK datagram goes back only after the commit.

A thread reads the socket; each datagram is checked (size, frame layout), rate-limited per source
address, and handed to the ingest writer, whose reply (after COMMIT) sends the ACK datagram to
the address it came from. Refused datagrams get no answer (a flood or garbage is not echoed);
MIC, replay and unknown-device answers are one result byte, as on the radio.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import Callable

from edge.errors import ConfigError
from edge.ingest import Ingestor
from edge.logs import kv
from edge.sources import datagram
from edge.sources.config import DatagramConfig
from edge.sources.counters import Counters
from edge.sources.errors import SourceInputError

log = logging.getLogger("fieldpost.sources.udp")

SOURCE = "udp"
RECV_SIZE = 65535  # read whole datagrams, so an oversized one is seen (and refused) as what it is
LOG_EVERY_S = 10.0  # refusals are counted each, logged at most this often per reason


class UdpListener:
    def __init__(
        self,
        config: DatagramConfig,
        ingest: Ingestor,
        *,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
        busy: Callable[[], str | None] | None = None,
    ):
        self.config = config
        self.ingest = ingest
        self.counters = counters
        self.gate = datagram.Gate(config, clock=clock, busy=busy)
        self._clock = clock
        self._logged: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            self.sock.bind((config.host, config.port))
        except OSError as exc:
            self.sock.close()
            raise ConfigError(
                f"sources.udp.port: cannot listen on {config.host}:{config.port}: {exc.strerror}"
            ) from None
        self.sock.settimeout(0.5)
        self.address = self.sock.getsockname()

    def start(self) -> UdpListener:
        self._thread = threading.Thread(target=self._run, name="fieldpost-udp", daemon=True)
        self._thread.start()
        log.info("udp listening %s", kv(address=f"{self.address[0]}:{self.address[1]}"))
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sock.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(RECV_SIZE)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            self.counters.add(SOURCE, "received")
            try:
                payload = self.gate.admit(data, addr[0])
            except SourceInputError as exc:  # no answer: a flood or garbage is not echoed
                self._refused(exc.reason, addr, f"{exc.field}: {exc.message}")
                continue
            self.ingest.submit(
                payload,
                bridge_id=None,
                reply=functools.partial(self._answer, addr=addr),
                refuse=functools.partial(self._refused, "busy", addr),
            )

    def _answer(self, ack: bytes, addr) -> None:
        # on the writer's thread, after COMMIT: a UDP send does not block
        self.counters.add(SOURCE, datagram.result_of(ack))
        try:
            self.sock.sendto(ack, addr)
        except OSError as exc:
            log.warning("udp reply failed %s", kv(to=f"{addr[0]}:{addr[1]}", error=exc))

    def _refused(self, reason: str, addr, why: str) -> None:
        self.counters.add(SOURCE, reason)
        now = self._clock()
        if now - self._logged.get(reason, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[reason] = now
            log.warning("udp datagram refused %s", kv(reason=reason, sender=addr[0], why=why))
