"""TLS to a real Mosquitto TLS listener with a test CA (trustme): verified, or no connection at all."""

from __future__ import annotations

import time

import pytest
import trustme
from sync_helpers import (
    CloudSubscriber,
    buffer_readings,
    sync_config,
    unsynced,
    wait_for,
)

from edge.errors import ConfigError
from edge.sync import SyncService, sync_status

CLIENT_ID = "fieldpost-testsite"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA, a broker certificate for 127.0.0.1/localhost, a client certificate, and a stranger CA."""
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("edge.fieldpost.test")
    wrong_name = ca.issue_cert("broker.elsewhere.test")
    files = {
        "ca": d / "ca.pem",
        "cert": d / "server.pem",
        "key": d / "server.key",
        "client_cert": d / "client.pem",
        "client_key": d / "client.key",
        "wrong_cert": d / "wrong.pem",
        "wrong_key": d / "wrong.key",
        "stranger_ca": d / "stranger.pem",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    wrong_name.cert_chain_pems[0].write_to_path(str(files["wrong_cert"]))
    wrong_name.private_key_pem.write_to_path(str(files["wrong_key"]))
    trustme.CA().cert_pem.write_to_path(str(files["stranger_ca"]))
    return {k: str(v) for k, v in files.items()}


def _tls_broker(
    broker_factory,
    pki,
    name="tls",
    *,
    cert="cert",
    key="key",
    require_certificate=False,
):
    return broker_factory(
        name,
        tls={
            "cafile": pki["ca"],
            "certfile": pki[cert],
            "keyfile": pki[key],
            "require_certificate": require_certificate,
        },
    )


def _tls_sync(port, **tls):
    return sync_config(
        port,
        mqtt={
            "host": "127.0.0.1",
            "port": port,
            "tls": {"enabled": True, **tls},
            "connect_timeout_s": 3.0,
        },
    )


def _run_until_error(path, conn, config, broker, seconds=1.0):
    before = sync_status(conn, time.time())["last_error_at"] or 0
    service = SyncService(path, config).start()
    try:
        wait_for(
            lambda: (sync_status(conn, time.time())["last_error_at"] or 0) > before,
            10,
            "a new TLS error",
        )
        time.sleep(seconds)  # let it retry a few times: it must keep refusing, never downgrade
    finally:
        service.stop()
    return sync_status(conn, time.time())


def test_connects_over_tls_when_given_the_ca(broker_factory, db, pki):
    path, conn = db
    broker = _tls_broker(broker_factory, pki)
    ids = buffer_readings(conn, 2000)
    sub = CloudSubscriber(broker.plain_port, ["fieldpost/testsite/+/up"]).start()
    service = SyncService(path, _tls_sync(broker.port, ca_file=pki["ca"])).start()
    try:
        wait_for(lambda: sub.count() == len(ids), 30, "readings over TLS")
        wait_for(lambda: unsynced(conn) == 0, 10, "rows synced")
    finally:
        service.stop()
        sub.stop()
    assert broker.clients_connected(CLIENT_ID) >= 1


def test_refuses_a_broker_it_cannot_verify_and_never_falls_back(broker_factory, db, pki):
    path, conn = db
    broker = _tls_broker(broker_factory, pki)
    buffer_readings(conn, 100)
    sub = CloudSubscriber(broker.plain_port, ["fieldpost/testsite/+/up"]).start()
    try:
        # No CA given: the system trust store does not know the test CA.
        status = _run_until_error(path, conn, _tls_sync(broker.port), broker)
        assert "CERTIFICATE_VERIFY_FAILED" in status["last_error"]
        # A CA that did not sign the broker's certificate.
        status = _run_until_error(path, conn, _tls_sync(broker.port, ca_file=pki["stranger_ca"]), broker)
        assert "CERTIFICATE_VERIFY_FAILED" in status["last_error"]
    finally:
        sub.stop()
    assert broker.clients_connected(CLIENT_ID) == 0
    assert sub.count() == 0 and unsynced(conn) == 100 and status["last_success"] is None


def test_refuses_a_certificate_for_another_host_name(broker_factory, db, pki):
    path, conn = db
    broker = _tls_broker(broker_factory, pki, cert="wrong_cert", key="wrong_key")
    buffer_readings(conn, 10)
    status = _run_until_error(path, conn, _tls_sync(broker.port, ca_file=pki["ca"]), broker, seconds=0.3)
    assert (
        "CERTIFICATE_VERIFY_FAILED" in status["last_error"] and "IP address mismatch" in status["last_error"]
    )
    assert broker.clients_connected(CLIENT_ID) == 0 and unsynced(conn) == 10


def test_tls_configured_against_a_plaintext_listener_never_speaks_plaintext(broker_factory, db, pki):
    path, conn = db
    broker = broker_factory("plain")  # plaintext only
    buffer_readings(conn, 10)
    status = _run_until_error(path, conn, _tls_sync(broker.port, ca_file=pki["ca"]), broker, seconds=0.5)
    assert status["last_error"] and status["last_success"] is None
    assert broker.clients_connected(CLIENT_ID) == 0, "the edge must never send an MQTT CONNECT in plaintext"
    assert unsynced(conn) == 10


def test_mutual_tls_with_a_client_certificate(broker_factory, db, pki):
    path, conn = db
    broker = _tls_broker(broker_factory, pki, "mtls", require_certificate=True)
    buffer_readings(conn, 50)
    status = _run_until_error(path, conn, _tls_sync(broker.port, ca_file=pki["ca"]), broker, seconds=0.2)
    assert broker.clients_connected(CLIENT_ID) == 0 and status["last_success"] is None

    config = _tls_sync(
        broker.port,
        ca_file=pki["ca"],
        cert_file=pki["client_cert"],
        key_file=pki["client_key"],
    )
    service = SyncService(path, config).start()
    try:
        wait_for(lambda: unsynced(conn) == 0, 20, "rows synced over mutual TLS")
    finally:
        service.stop()
    assert broker.clients_connected(CLIENT_ID) >= 1


def test_tls_configuration_errors_are_errors_not_downgrades(db, tmp_path):
    path, _ = db
    with pytest.raises(ConfigError, match=r"sync\.mqtt\.tls\.ca_file"):
        SyncService(
            path,
            sync_config(
                8883,
                mqtt={"tls": {"enabled": True, "ca_file": str(tmp_path / "nope.pem")}},
            ),
        )
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"sync\.mqtt\.tls"):
        SyncService(
            path,
            sync_config(8883, mqtt={"tls": {"enabled": True, "ca_file": str(bad)}}),
        )
    with pytest.raises(ConfigError, match=r"sync\.mqtt\.tls\.enabled"):
        SyncService(
            path,
            sync_config(1883, mqtt={"host": "broker.example.com", "tls": {"enabled": False}}),
        )
