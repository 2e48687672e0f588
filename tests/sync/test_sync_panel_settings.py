"""The panel's settings take effect: retention and sync lay them over their TOML config, at start and
when an admin changes them, and ignore (with a log line naming the key) a stored value that is bad."""

from __future__ import annotations

import json
import logging
import time

import pytest
import trustme
from click.testing import CliRunner
from sync_helpers import (
    CloudSubscriber,
    add_devices,
    buffer_readings,
    mark_first_synced,
    sync_config,
    unsynced,
    wait_for,
)

from edge.errors import ConfigError
from edge.store import transaction
from edge.store.retention import parse_retention_config, policy_with_settings
from edge.store.retention_worker import RetentionWorker
from edge.sync import SyncService, parse_sync_config
from edge.sync.cli import sync_group
from edge.sync.panel_settings import sync_config_with, with_endpoint
from tests.webui.helpers import csrf_token, login, make_user
from webui import create_app, settings_store

CLIENT_ID = "fieldpost-testsite"
DAY = 86400.0


def _put(conn, key, value):
    with transaction(conn):
        settings_store.put(conn, key, value, by="test", now=time.time())


@pytest.fixture
def panel(db):
    """An admin's panel client on the same database file the services use."""
    path, _ = db
    app = create_app({"DATABASE": str(path), "SECRET_KEY": "test", "TESTING": True})
    make_user(str(path), "alice", "admin")
    client = app.test_client()
    assert login(client, "alice").status_code == 302
    return client


def _panel_post(client, url, **data):
    response = client.post(url, data={"csrf_token": csrf_token(client, "/settings"), **data})
    assert response.status_code == 302, response.get_data(as_text=True)


def _readings(conn) -> int:
    return conn.execute("SELECT count(*) FROM readings").fetchone()[0]


# ------------------------------------------------------------------ retention


def test_retention_worker_applies_the_panels_retention_and_ignores_bad_values(db, panel, caplog):
    path, conn = db
    add_devices(conn)
    old = buffer_readings(conn, 200, created_at=time.time() - 20 * DAY)  # 20 days old
    fresh = buffer_readings(conn, 40, start_fcnt=1000)  # fresh
    mark_first_synced(conn, old + fresh, 240)
    toml = parse_retention_config({"max_age_days": 90, "interval_s": 3600})
    worker = RetentionWorker(path, toml, settings_poll_s=0.02).start()
    try:
        wait_for(lambda: worker.passes >= 1, 10, "the first pass")
        assert _readings(conn) == 240 and worker.policy == toml  # 90 days (TOML): nothing is old enough

        # An admin sets 10 days in the panel: the worker takes it up and passes at once
        # (its own interval is an hour).
        _panel_post(panel, "/settings/retention", max_age_days="10", max_db_mb="")
        wait_for(lambda: _readings(conn) == 40, 10, "readings older than 10 days removed")
        assert worker.policy.max_age_s == 10 * DAY
        assert worker.policy.max_db_bytes is None and worker.policy.interval_s == 3600

        # A bad stored value (not one the panel would write) is logged with its key and ignored:
        # the TOML's 90 days apply again, and the worker keeps running.
        with caplog.at_level(logging.ERROR, logger="fieldpost.retention"):
            _put(conn, "retention.max_age_days", "forever")
            wait_for(lambda: worker.policy.max_age_s == 90 * DAY, 10, "back to the TOML value")
        assert any("key=retention.max_age_days" in r.getMessage() for r in caplog.records)
        passes = worker.passes
        _put(conn, "retention.max_age_days", 30)
        wait_for(lambda: worker.policy.max_age_s == 30 * DAY and worker.passes > passes, 10, "30 days")
    finally:
        worker.stop()


def test_stored_retention_values_are_checked_like_the_config_files():
    toml = parse_retention_config({"max_age_days": 90, "max_db_bytes": 10_000_000})
    assert policy_with_settings(toml, {}) == toml
    both = policy_with_settings(toml, {"retention.max_age_days": 7, "retention.max_db_bytes": 2_000_000})
    assert (both.max_age_s, both.max_db_bytes) == (7 * DAY, 2_000_000)
    # null size: the admin chose "no size limit"
    assert policy_with_settings(toml, {"retention.max_db_bytes": None}).max_db_bytes is None
    for bad in (
        {"retention.max_age_days": -1},
        {"retention.max_age_days": None},
        {"retention.max_age_days": True},
        {"retention.max_db_bytes": 12.5},
        {"retention.max_db_bytes": 10},  # below the 64 KiB floor
        {"retention.max_db_bytes": "big"},
    ):
        assert policy_with_settings(toml, bad) == toml, bad


# ------------------------------------------------------------------ sync endpoint


def test_endpoint_rules_keep_tls(tmp_path):
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    tls = parse_sync_config(
        {
            "site": "s",
            "mqtt": {"host": "cloud.example.com", "tls": {"ca_file": str(ca)}},
            "https": {"token": "t"},
        }
    )
    moved = with_endpoint(tls, "mqtts://other.example.com:8884")
    assert (moved.mqtt.host, moved.mqtt.port, moved.mqtt.tls.enabled) == ("other.example.com", 8884, True)
    assert moved.mqtt.tls.ca_file == str(ca)  # verification against the configured CA stays
    assert with_endpoint(tls, "mqtts://other.example.com").mqtt.port == 8883
    https = with_endpoint(tls, "https://ingest.example.com/v1/up")
    assert (https.sink, https.https.url, https.https.token) == (
        "https",
        "https://ingest.example.com/v1/up",
        "t",
    )
    for bad, why in (
        ("mqtt://127.0.0.1:1883", "never turns TLS off"),  # the TOML link is TLS: no downgrade
        ("mqtt://cloud.example.com", "only towards this machine"),
        ("http://cloud.example.com/up", "must start with"),
        ("ftp://x", "must start with"),
        ("mqtts://", "needs a host"),
        ("mqtts://host:99999", "bad port"),
        ("mqtts://host/topic", "without a path"),
        ("mqtts://user@host", "needs a host"),
        (42, "must be a string"),
    ):
        with pytest.raises(ConfigError, match="sync.endpoint") as err:
            with_endpoint(tls, bad)
        assert why in str(err.value), (bad, str(err.value))
        assert sync_config_with(tls, {"sync.endpoint": bad}) == tls
    assert sync_config_with(tls, {"sync.endpoint": ""}) == tls  # empty: the TOML's endpoint
    plain = parse_sync_config(sync_config(1883))  # loopback plaintext in the TOML
    assert with_endpoint(plain, "mqtt://127.0.0.1:1999").mqtt.port == 1999
    assert with_endpoint(plain, "mqtts://127.0.0.1:8999").mqtt.tls.enabled is True


def test_sync_follows_the_endpoint_set_in_the_panel(broker_factory, db, panel, caplog):
    path, conn = db
    first, second = broker_factory("first"), broker_factory("second")
    topics = ["fieldpost/testsite/+/up"]
    sub1 = CloudSubscriber(first.port, topics, client_id="cloud-1").start()
    sub2 = CloudSubscriber(second.port, topics, client_id="cloud-2").start()
    service = SyncService(path, sync_config(first.port), settings_poll_s=0.02).start()
    try:
        ids = buffer_readings(conn, 50)
        wait_for(lambda: sub1.count() == 50 and unsynced(conn) == 0, 15, "readings at the TOML's broker")

        _panel_post(panel, "/settings/cloud", endpoint=f"mqtt://127.0.0.1:{second.port}")
        wait_for(lambda: service.config.mqtt.port == second.port, 10, "the switch")  # then new data
        ids += buffer_readings(conn, 50, start_fcnt=100)
        wait_for(lambda: sub2.count() == 50 and unsynced(conn) == 0, 15, "readings at the panel's broker")
        assert service.config.mqtt.port == second.port and sub1.count() == 50
        assert second.clients_connected(CLIENT_ID) >= 1

        # Emptied in the panel: back to the config file's endpoint.
        _panel_post(panel, "/settings/cloud", endpoint="")
        wait_for(lambda: service.config == service.base_config, 10, "the switch back")
        buffer_readings(conn, 10, start_fcnt=200)
        wait_for(lambda: sub1.count() == 60 and unsynced(conn) == 0, 15, "back at the TOML's broker")

        # A bad stored value (the panel's form would refuse it) is logged with its key and ignored:
        # the config file's endpoint applies, and sync goes on.
        _panel_post(panel, "/settings/cloud", endpoint=f"mqtt://127.0.0.1:{second.port}")
        wait_for(lambda: service.config.mqtt.port == second.port, 10, "the panel's broker again")
        with caplog.at_level(logging.ERROR, logger="fieldpost.sync"):
            _put(conn, "sync.endpoint", "ftp://nowhere")
            wait_for(lambda: service.config == service.base_config, 10, "the TOML's endpoint again")
        assert any("key=sync.endpoint" in r.getMessage() for r in caplog.records)
        buffer_readings(conn, 10, start_fcnt=300)
        wait_for(lambda: sub1.count() == 70 and unsynced(conn) == 0, 15, "still syncing")
        assert sub2.count() == 50
    finally:
        service.stop()
        sub1.stop()
        sub2.stop()


def test_a_stored_endpoint_applies_at_start_and_a_bad_one_does_not_stop_sync(broker_factory, db):
    path, conn = db
    toml_broker, panel_broker = broker_factory("toml"), broker_factory("panel")
    _put(conn, "sync.endpoint", f"mqtt://127.0.0.1:{panel_broker.port}")
    service = SyncService(path, sync_config(toml_broker.port))
    assert service.config.mqtt.port == panel_broker.port
    _put(conn, "sync.endpoint", {"not": "a url"})
    service = SyncService(path, sync_config(toml_broker.port)).start()
    try:
        assert service.config == service.base_config
        buffer_readings(conn, 20)
        wait_for(lambda: unsynced(conn) == 0, 15, "synced to the TOML's broker")
    finally:
        service.stop()
    assert toml_broker.clients_connected(CLIENT_ID) >= 1 and panel_broker.clients_connected(CLIENT_ID) == 0


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki-panel")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = {"cafile": d / "ca.pem", "certfile": d / "server.pem", "keyfile": d / "server.key"}
    ca.cert_pem.write_to_path(str(files["cafile"]))
    server.cert_chain_pems[0].write_to_path(str(files["certfile"]))
    server.private_key_pem.write_to_path(str(files["keyfile"]))
    return {k: str(v) for k, v in files.items()}


def test_a_tls_link_moves_to_another_tls_broker_and_never_to_plaintext(broker_factory, db, pki, caplog):
    path, conn = db
    first, second = broker_factory("tls1", tls=pki), broker_factory("tls2", tls=pki)
    config = sync_config(
        first.port,
        mqtt={"host": "127.0.0.1", "port": first.port, "tls": {"enabled": True, "ca_file": pki["cafile"]}},
    )
    sub1 = CloudSubscriber(first.plain_port, ["fieldpost/testsite/+/up"], client_id="cloud-1").start()
    sub2 = CloudSubscriber(second.plain_port, ["fieldpost/testsite/+/up"], client_id="cloud-2").start()
    service = SyncService(path, config, settings_poll_s=0.02).start()
    try:
        buffer_readings(conn, 20)
        wait_for(lambda: unsynced(conn) == 0, 15, "synced over TLS to the first broker")
        _put(conn, "sync.endpoint", f"mqtts://127.0.0.1:{second.port}")
        wait_for(lambda: service.config.mqtt.port == second.port, 10, "the switch")
        buffer_readings(conn, 20, start_fcnt=100)
        wait_for(lambda: sub2.count() == 20 and unsynced(conn) == 0, 15, "over TLS to the second broker")
        assert service.config.mqtt.tls.enabled and service.config.mqtt.tls.ca_file == pki["cafile"]

        # The second broker's plaintext listener, stored as the endpoint: refused and logged; the
        # config file's TLS link applies again. Never plaintext.
        with caplog.at_level(logging.ERROR, logger="fieldpost.sync"):
            _put(conn, "sync.endpoint", f"mqtt://127.0.0.1:{second.plain_port}")
            wait_for(lambda: service.config == service.base_config, 10, "the TOML's TLS link again")
        assert any("never turns TLS off" in r.getMessage() for r in caplog.records)
        buffer_readings(conn, 20, start_fcnt=200)
        wait_for(lambda: sub1.count() == 40 and unsynced(conn) == 0, 15, "over TLS to the first broker")
        assert sub2.count() == 20 and service.config.mqtt.tls.enabled
    finally:
        service.stop()
        sub1.stop()
        sub2.stop()


def test_the_retention_command_uses_the_panels_values_too(db, tmp_path):
    path, conn = db
    ids = buffer_readings(conn, 30, created_at=time.time() - 5 * DAY)
    mark_first_synced(conn, ids, 20)
    config = tmp_path / "f.toml"
    config.write_text("[retention]\nmax_age_days = 90\n")
    args = ["retention", "--db", str(path), "--config", str(config), "--json"]
    out = CliRunner().invoke(sync_group, args)
    assert out.exit_code == 0 and json.loads(out.output)["aged_out"] == 0, out.output
    _put(conn, "retention.max_age_days", 2)
    out = CliRunner().invoke(sync_group, args)
    assert out.exit_code == 0 and json.loads(out.output)["aged_out"] == 20, out.output
