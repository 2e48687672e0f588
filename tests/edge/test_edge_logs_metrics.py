import io
import json
import logging
import urllib.error
import urllib.request

from edge.logs import KeyValueFormatter, kv, quote, setup
from edge.metrics import Sources, StatusServer, make_registry


def test_key_value_lines():
    assert (
        kv(port="/dev/ttyUSB0", reason="no such device", n=3)
        == 'port=/dev/ttyUSB0 reason="no such device" n=3'
    )
    assert quote('say "hi"\nnow') == '"say \\"hi\\"\\nnow"'
    assert quote("") == '""'
    stream = io.StringIO()
    root = logging.getLogger("fieldpost")
    saved = (list(root.handlers), root.level, root.propagate)
    try:
        setup("INFO", stream=stream)
        logging.getLogger("fieldpost.test").info("uplink rejected %s", kv(result="bad_mic", fcnt=7))
        logging.getLogger("fieldpost.test").debug("hidden")
    finally:  # other tests in this process capture fieldpost.* logs the ordinary way
        root.handlers[:], root.level, root.propagate = saved
    assert (
        stream.getvalue() == 'level=info logger=fieldpost.test msg="uplink rejected result=bad_mic fcnt=7"\n'
    )
    record = logging.LogRecord("fieldpost.x", logging.WARNING, "", 0, "plain", None, None)
    assert KeyValueFormatter(timestamps=True).format(record).startswith("ts=")


def test_status_server_health_and_metrics(db_path):
    healthy = {"state": "ok"}
    ports = [
        {
            "path": "/dev/ttyUSB0",
            "up": True,
            "peer_id": "00000000000000b0",
            "frames_rx": 12,
            "crc_errors": 2,
            "nacks_tx": 1,
            "reconnects": 3,
        }
    ]
    registry = make_registry(Sources(ports=lambda: ports, db_path=str(db_path)))
    server = StatusServer(
        registry, lambda: (healthy["state"], {"links_up": 1}), host="127.0.0.1", port=0
    ).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        body = json.loads(urllib.request.urlopen(base + "/health", timeout=5).read())
        assert body == {"status": "ok", "links_up": 1}
        for state in ("degraded", "failing"):  # anything but ok is a 503 a plain HTTP check notices
            healthy["state"] = state
            try:
                urllib.request.urlopen(base + "/health", timeout=5)
                raise AssertionError("expected 503")
            except urllib.error.HTTPError as err:
                assert err.code == 503 and json.loads(err.read())["status"] == state
        text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert 'fieldpost_link_crc_errors_total{port="/dev/ttyUSB0"} 2.0' in text
        assert 'fieldpost_link_reconnects_total{port="/dev/ttyUSB0"} 3.0' in text
        assert 'fieldpost_downlinks{status="queued"} 0.0' in text
        assert "fieldpost_backlog_oldest_timestamp_seconds 0.0" in text
        try:
            urllib.request.urlopen(base + "/nope", timeout=5)
        except urllib.error.HTTPError as err:
            assert err.code == 404
    finally:
        server.stop()
