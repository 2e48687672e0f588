"""HTTPS sink: one gzip'd JSON POST per batch, an Idempotency-Key, retries on retryable statuses only.

Retryable: 408, 429 and 5xx, and transport errors (the request may or may not have
arrived; the Idempotency-Key makes the retry safe). Anything else that is not 2xx
(400, 401, 413, ...) raises SinkRejected at once: sending the same bytes again
would get the same answer. Certificates are always verified; only https:// URLs
are accepted by the config.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import ssl
import urllib.parse
from collections.abc import Callable

from edge.errors import ConfigError, SinkRejected, SinkUnavailable
from edge.sync import encoding
from edge.sync.backoff import Backoff
from edge.sync.batching import Batch
from edge.sync.config import SyncConfig
from edge.sync.mqtt_sink import tcp_reachable

log = logging.getLogger("fieldpost.sync")

RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES


class HttpsSink:
    name = "https"

    def __init__(
        self,
        config: SyncConfig,
        *,
        backoff: Backoff,
        sleep: Callable[[float], bool],
    ):
        """``sleep(seconds)`` waits between retries and returns True when the service is stopping."""
        self.config = config
        self.https = config.https
        parts = urllib.parse.urlsplit(self.https.url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigError(f"sync.https.url: {self.https.url!r} must be an https:// URL")
        self._host = parts.hostname
        self._port = parts.port or 443
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            self._tls = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.https.ca_file)
            if self.https.cert_file:
                self._tls.load_cert_chain(self.https.cert_file, self.https.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"sync.https: cannot load certificates: {exc}") from exc
        self._tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self._backoff = backoff
        self._sleep = sleep
        self._conn: http.client.HTTPSConnection | None = None
        self._acked: list[Batch] = []
        self._up = False
        self.requests_sent = 0
        # The last batch encoded: the budget check (wire_size) and submit encode the same batch.
        self._encoded: tuple[Batch, bytes] | None = None

    @property
    def connected(self) -> bool:
        # HTTP has no session: "connected" means ready to send (opened, and not failed since).
        return self._up

    def open(self) -> None:
        self._up = True

    def close(self) -> None:
        self._up = False
        self._drop_connection()

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def reachable(self, timeout: float) -> bool:
        """Whether the endpoint's port accepts a TCP connection now (nothing is sent on it)."""
        return tcp_reachable(self._host, self._port, timeout)

    def free_slots(self) -> int:
        return 0 if self._acked else 1  # one request at a time: the ack is known when submit returns

    def oldest_unacked_since(self) -> float | None:
        return None

    def payload(self, batch: Batch) -> bytes:
        if self._encoded is None or self._encoded[0] is not batch:
            raw = encoding.envelope_json(batch, self.config.site)
            self._encoded = (batch, gzip.compress(raw, compresslevel=6, mtime=0))
        return self._encoded[1]

    def wire_size(self, batch: Batch) -> int:
        return len(self.payload(batch)) + 300  # headers, roughly

    def submit(self, batch: Batch, now: float) -> int:
        """POST the batch, retrying retryable failures; returns bytes sent (all attempts)."""
        body = self.payload(batch)
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "Idempotency-Key": batch.key,
            "User-Agent": "fieldpost-edge",
        }
        if self.https.token:
            headers["Authorization"] = f"Bearer {self.https.token}"
        sent = 0
        attempt = 0
        while True:
            attempt += 1
            sent += len(body) + 300
            try:
                status, text = self._post(body, headers)
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection()
                failure = f"https POST {self._host}:{self._port}: {exc}"
                answered = False
            else:
                answered = True
                if 200 <= status < 300:
                    self._backoff.reset()
                    self._acked.append(batch)
                    return sent
                if not is_retryable(status):
                    raise SinkRejected(f"https POST answered {status}: {text[:200]}", status)
                failure = f"https POST answered {status}: {text[:200]}"
            if attempt >= self.https.max_attempts:
                raise SinkUnavailable(f"{failure} (gave up after {attempt} attempts)", answered=answered)
            delay = self._backoff.next_delay()
            log.warning(
                "sync=https event=retry attempt=%d delay=%.2f why=%r",
                attempt,
                delay,
                failure,
            )
            if self._sleep(delay):
                raise SinkUnavailable(f"{failure} (stopping)", answered=answered)

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.https.timeout_s, context=self._tls
            )
        self.requests_sent += 1
        self._conn.request("POST", self._path, body=body, headers=headers)
        response = self._conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        if response.getheader("Connection", "").lower() == "close":
            self._drop_connection()
        return response.status, text

    def poll(self, timeout: float) -> list[Batch]:
        acked, self._acked = self._acked, []
        if not acked and timeout > 0:
            self._sleep(timeout)
        return acked
