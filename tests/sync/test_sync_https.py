"""The HTTPS sink against a local TLS server (trustme CA): batches, gzip, Idempotency-Key, retry policy."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import ssl
import threading
import time

import pytest
import trustme
from sync_helpers import (
    assert_complete_and_ordered,
    buffer_readings,
    unsynced,
    wait_for,
)

from edge.errors import ConfigError
from edge.sync import SyncService, sync_status


class CloudHttp:
    """A TLS HTTP server that records every POST; ``answer(n)`` picks the status of the n-th request."""

    def __init__(self, cert_dir, ca: trustme.CA, answer=lambda n: 200):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.answer = answer
        cloud = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                with cloud.lock:
                    n = len(cloud.requests)
                    cloud.requests.append({"path": self.path, "headers": dict(self.headers), "raw": raw})
                status = cloud.answer(n)
                body = json.dumps({"status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(ctx)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def documents(self) -> list[dict]:
        with self.lock:
            return [json.loads(gzip.decompress(r["raw"])) for r in self.requests]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("https-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    ca.path = str(path)
    return ca


def _config(port, ca_path, **over):
    cfg = {
        "site": "testsite",
        "sink": "https",
        "batch_max_messages": 100,
        "batch_max_wait_s": 0.05,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.2,
        "poll_interval_s": 0.05,
        "https": {
            "url": f"https://127.0.0.1:{port}/ingest?site=testsite",
            "ca_file": ca_path,
            "token": "t0k",
            "max_attempts": 4,
        },
    }
    cfg.update(over)
    return cfg


class _Sub:
    """Adapts the HTTP cloud to assert_complete_and_ordered (arrivals per device, bodies per id)."""

    def __init__(self, docs):
        from collections import defaultdict

        self.lock = threading.Lock()
        self.arrivals = defaultdict(list)
        self.bodies = defaultdict(list)
        self.distinct = set()
        for doc in docs:
            for item in doc["messages"]:
                self.arrivals[item["body"]["device"]].append(item["id"])
                if item["body"] not in self.bodies[item["id"]]:
                    self.bodies[item["id"]].append(item["body"])
                self.distinct.add(item["id"])


def test_batches_are_gzip_posts_with_stable_idempotency_keys(db, ca, tmp_path):
    path, conn = db
    ids = buffer_readings(conn, 1000)
    with CloudHttp(tmp_path, ca) as cloud:
        service = SyncService(path, _config(cloud.port, ca.path)).start()
        try:
            wait_for(lambda: unsynced(conn) == 0, 30, "all rows synced over HTTPS")
        finally:
            service.stop()
        docs = cloud.documents()
        requests = list(cloud.requests)
    assert len(requests) == 10, "1000 readings in batches of 100"
    for req, doc in zip(requests, docs, strict=True):
        assert req["path"] == "/ingest?site=testsite"
        assert req["headers"]["Content-Encoding"] == "gzip"
        assert req["headers"]["Authorization"] == "Bearer t0k"
        expected_key = hashlib.sha256("\n".join(m["id"] for m in doc["messages"]).encode()).hexdigest()[:32]
        assert req["headers"]["Idempotency-Key"] == expected_key == doc["batch"]
        assert len(req["raw"]) < len(json.dumps(doc)) / 3, "gzip must actually compress"
    assert assert_complete_and_ordered(_Sub(docs), ids) == {
        "distinct": 1000,
        "duplicates": 0,
    }
    assert sync_status(conn, time.time())["sinks"]["https"]["bytes_today"] > 0


def test_503_is_retried_with_the_same_key_and_body(db, ca, tmp_path):
    path, conn = db
    buffer_readings(conn, 100)
    with CloudHttp(tmp_path, ca, answer=lambda n: 503 if n < 2 else 200) as cloud:
        service = SyncService(path, _config(cloud.port, ca.path)).start()
        try:
            wait_for(lambda: unsynced(conn) == 0, 30, "rows synced after the 503s")
        finally:
            service.stop()
        requests = list(cloud.requests)
    assert len(requests) == 3
    assert len({r["headers"]["Idempotency-Key"] for r in requests}) == 1
    assert len({r["raw"] for r in requests}) == 1


def test_400_is_not_retried_and_nothing_is_marked_synced(db, ca, tmp_path):
    path, conn = db
    buffer_readings(conn, 100)
    with CloudHttp(tmp_path, ca, answer=lambda n: 400) as cloud:
        # After a permanent refusal the service waits backoff_max_s before it tries that batch again.
        service = SyncService(path, _config(cloud.port, ca.path, backoff_max_s=30.0)).start()
        try:
            wait_for(
                lambda: sync_status(conn, time.time())["last_error"],
                10,
                "the refusal recorded",
            )
            time.sleep(1.0)  # time in which a retrying client would have hammered the server
            assert cloud.count() == 1
        finally:
            service.stop()
    status = sync_status(conn, time.time())
    assert "400" in status["last_error"] and status["last_success"] is None
    assert unsynced(conn) == 100


def test_https_only_and_verified(db, ca, tmp_path):
    path, conn = db
    with pytest.raises(ConfigError, match=r"sync\.https\.url"):
        SyncService(path, _config(1, ca.path, https={"url": "http://127.0.0.1/ingest"}))
    buffer_readings(conn, 10)
    stranger = tmp_path / "stranger.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    with CloudHttp(tmp_path, ca) as cloud:
        service = SyncService(path, _config(cloud.port, str(stranger))).start()
        try:
            wait_for(
                lambda: sync_status(conn, time.time())["last_error"],
                10,
                "the TLS error recorded",
            )
        finally:
            service.stop()
        assert cloud.count() == 0
    assert "CERTIFICATE_VERIFY_FAILED" in sync_status(conn, time.time())["last_error"]
    assert unsynced(conn) == 10


def test_only_the_unacknowledged_batch_is_sent_again(db, ca, tmp_path):
    path, conn = db
    buffer_readings(conn, 300)
    # The second request fails and the sink gives up at once (max_attempts 1): the service
    # backs off and resends from the outbox, where only that batch is still unsynced.
    config = _config(0, ca.path)
    with CloudHttp(tmp_path, ca, answer=lambda n: 503 if n == 1 else 200) as cloud:
        config["https"] = {
            **config["https"],
            "url": f"https://127.0.0.1:{cloud.port}/ingest",
            "max_attempts": 1,
        }
        service = SyncService(path, config).start()
        try:
            wait_for(lambda: unsynced(conn) == 0, 30, "all rows synced")
        finally:
            service.stop()
        keys = [r["headers"]["Idempotency-Key"] for r in cloud.requests]
    assert len(keys) == 4 and len(set(keys)) == 3
    assert keys[1] == keys[2], "the refused batch, and only it, went again"
    assert sync_status(conn, time.time())["last_error"].startswith("https POST answered 503")
