"""Home Assistant MQTT discovery against a real Mosquitto: retained configs that match Home Assistant's
documented MQTT sensor schema, states as readings are committed, offline by the last will when the
edge process is killed, entities removed with their device; with the ThingsBoard sync profile on
the same broker or not."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from edge import registry
from edge.codecs import CodecRunner, lpp
from edge.errors import ConfigError
from edge.homeassistant import discovery
from edge.homeassistant.config import HomeAssistantConfig, parse_homeassistant
from edge.homeassistant.service import HomeAssistantService, _metric_families
from edge.ingest.process import CommittedReading
from edge.store import connect
from tests.homeassistant.ha_schema import CONFIG_TOPIC, DOCUMENTED_UNITS, SENSOR
from tests.storekit import put_readings

REPO = Path(__file__).resolve().parents[2]
NODE = "a1b2c3d4e5f60708"
OTHER = "0011223344556677"
SITE = "north-field"
EVERY_MEASURE = [
    (1, "temperature", -4.5),
    (2, "humidity", 81.0),
    (3, "voltage", 3.61),
    (4, "barometer", 1013.2),
    (5, "illuminance", 230),
    (6, "current", 0.25),
    (7, "power", 12),
    (8, "energy", 1.5),
    (9, "frequency", 50),
    (10, "distance", 2.5),
    (11, "percentage", 40),
    (12, "concentration", 415),
]


def register(db_path, *device_ids, name="Freezer"):
    conn = connect(db_path)
    try:
        for device_id in device_ids:
            registry.add_device(conn, device_id, name=name, board="heltec-v3", actor="test", now=1.0)
    finally:
        conn.close()


def test_every_config_matches_the_documented_mqtt_sensor_schema():
    config = HomeAssistantConfig(enabled=True)
    node = discovery.Node(NODE, "Freezer", "heltec-v3", "1.2.0", 300)
    values = lpp.decode(lpp.encode(EVERY_MEASURE), analog_channels=lpp.FIELDPOST_ANALOG_CHANNELS)
    assert len(values) == len(EVERY_MEASURE)
    unique_ids = set()
    for value in values:
        topic, payload = discovery.sensor_config(config, SITE, node, value, version="0.1.0")
        jsonschema.validate(payload, SENSOR)
        assert re.match(CONFIG_TOPIC, topic), topic
        if "device_class" in payload:
            assert payload["unit_of_measurement"] in DOCUMENTED_UNITS[payload["device_class"]], payload
            if payload["device_class"] == "energy":
                assert payload["state_class"] in ("total", "total_increasing")
        unique_ids.add(payload["unique_id"])
        key = payload["value_template"].removeprefix("{{ value_json.").removesuffix(" }}")
        assert discovery.state([value]) == {key: value["value"]}
    assert len(unique_ids) == len(values)
    classes = {discovery.sensor_config(config, SITE, node, v)[1].get("device_class") for v in values}
    assert {"temperature", "humidity", "voltage", "atmospheric_pressure", "illuminance", "energy"} <= classes


def test_a_unit_home_assistant_would_refuse_drops_the_device_class():
    config = HomeAssistantConfig(enabled=True)
    value = {"channel": 1, "name": "temperature", "value": 70.0, "unit": "degF"}
    _, payload = discovery.sensor_config(config, SITE, discovery.Node(NODE), value)
    jsonschema.validate(payload, SENSOR)
    assert "device_class" not in payload and payload["unit_of_measurement"] == "degF"


def write_config(tmp_path, db_path, broker_port, profile):
    sync = ""
    if profile is not None:
        sync = f"""
[sync]
site = "{SITE}"
poll_interval_s = 0.05
[sync.mqtt]
host = "127.0.0.1"
port = {broker_port}
profile = "{profile}"
[sync.mqtt.tls]
enabled = false
"""
    path = tmp_path / "fieldpost.toml"
    path.write_text(
        f"""
[edge]
db = "{db_path}"
site = "{SITE}"
[link]
discover = false
[http]
enabled = false
[webui]
enabled = false
[homeassistant]
enabled = true
host = "127.0.0.1"
port = {broker_port}
keepalive_s = 5
{sync}"""
    )
    return path


@pytest.mark.parametrize("profile", [None, "generic", "thingsboard"])
def test_the_edge_process_announces_its_nodes_and_its_last_will_says_offline_when_killed(
    tmp_path, db_path, broker, watch, profile
):
    register(db_path, NODE)
    conn = connect(db_path)
    # temperature 21.5, humidity 55, voltage 3.7 (tests.storekit); recent, so retention keeps them
    put_readings(conn, NODE, range(5), received_at=time.time())
    conn.close()
    config_path = write_config(tmp_path, db_path, broker.port, profile)
    watcher = watch("homeassistant/#", "fieldpost/#")
    status = f"fieldpost/{SITE}/status"
    log = open(tmp_path / "edge.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.daemon", "--config", str(config_path)],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        watcher.wait(lambda: watcher.payload(status) == b"online", "the birth message")
        watcher.wait(lambda: len(watcher.configs()) == 3, "three retained sensor configs")
        state_topic = f"fieldpost/{SITE}/{NODE}/state"
        watcher.wait(lambda: watcher.json(state_topic), "the node's state")
        assert watcher.json(state_topic) == {"temperature_1": 21.5, "humidity_2": 55.0, "voltage_3": 3.7}
        configs = watcher.configs()
        for topic, payload in configs.items():
            jsonschema.validate(payload, SENSOR)
            assert topic.startswith(f"homeassistant/sensor/fieldpost_{SITE}/{NODE}_")
            assert payload["availability_topic"] == status and payload["state_topic"] == state_topic
            assert payload["device"]["name"] == "Freezer" and payload["device"]["model"] == "heltec-v3"
        assert sorted(p["device_class"] for p in configs.values()) == ["humidity", "temperature", "voltage"]
        retained = {t for t, _p, r in watcher.history if r}
        assert retained == set()  # all of the above were published live while we watched ...
        late = watch("homeassistant/#", f"fieldpost/{SITE}/#")  # ... and a late subscriber gets them retained
        late.wait(lambda: len(late.configs()) == 3 and late.payload(status) == b"online", "retained configs")

        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        watcher.wait(lambda: watcher.payload(status) == b"offline", "the last will", timeout=20)
        after = watch(status)
        after.wait(lambda: after.payload(status) == b"offline", "the will, retained")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
        print((tmp_path / "edge.log").read_text())  # shown by pytest when the test fails


@pytest.fixture
def service(db_path, broker):
    made = []

    def make(**overrides):
        config = HomeAssistantConfig(enabled=True, host="127.0.0.1", port=broker.port, **overrides)
        svc = HomeAssistantService(config, db_path, site=SITE, decode=CodecRunner().decode).start()
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.stop()


def committed(device_id, fcnt, values):
    return CommittedReading(
        id=fcnt,
        device_id=device_id,
        fcnt=fcnt,
        port=1,
        received_at=1_800_000_000.0,
        raw=lpp.encode(values),
        rssi=-80,
        snr=7.0,
        bridge_id=None,
        codec="lpp",
    )


def test_states_follow_committed_readings_and_removing_a_device_removes_its_entities(db_path, service, watch):
    register(db_path, NODE, OTHER)
    watcher = watch("homeassistant/#", "fieldpost/#")
    ha = service()
    assert ha.publisher.connected.wait(10)
    ha.on_readings(
        [committed(NODE, 1, [(1, "temperature", 4.0)]), committed(OTHER, 1, [(2, "humidity", 60.0)])]
    )
    assert ha.drain()
    node_state = f"fieldpost/{SITE}/{NODE}/state"
    watcher.wait(lambda: watcher.json(node_state) == {"temperature_1": 4.0}, "the first state")
    # a measure the node did not report before is announced; the state keeps the others' last values
    ha.on_readings([committed(NODE, 2, [(1, "temperature", 4.5), (3, "voltage", 3.3)])])
    assert ha.drain()
    watcher.wait(
        lambda: watcher.json(node_state) == {"temperature_1": 4.5, "voltage_3": 3.3}, "the next state"
    )
    watcher.wait(lambda: len(watcher.configs()) == 3, "three configs")
    families = {f.name: f for f in _metric_families(ha)}
    sent = {s.labels["kind"]: s.value for s in families["fieldpost_homeassistant_messages"].samples}
    assert sent["announced"] == 3 and sent["states"] == 3
    assert families["fieldpost_homeassistant_connected"].samples[0].value == 1

    conn = connect(db_path)
    try:
        registry.remove_device(conn, NODE, actor="test", now=2.0)
    finally:
        conn.close()
    ha.check_removed()
    assert ha.drain()
    gone = [t for t in watcher.latest if t.startswith(f"homeassistant/sensor/fieldpost_{SITE}/{NODE}_")]
    watcher.wait(lambda: all(watcher.payload(t) == b"" for t in gone) and len(gone) == 2, "empty configs")
    assert watcher.payload(node_state) == b""
    fresh = watch("homeassistant/#")  # what the broker still retains: only the other device's entity
    fresh.wait(lambda: fresh.configs(), "retained configs")
    assert [t.rsplit("/", 2)[1] for t in fresh.configs()] == [f"{OTHER}_humidity_2"]


def test_configs_left_by_a_previous_run_for_a_removed_device_are_removed(db_path, service, watch):
    register(db_path, NODE, OTHER)
    conn = connect(db_path)
    put_readings(conn, NODE, [1])
    put_readings(conn, OTHER, [1])
    conn.close()
    first = service()
    watcher = watch("homeassistant/#")
    watcher.wait(lambda: len(watcher.configs()) == 6, "both devices announced")
    first.stop()
    conn = connect(db_path)
    registry.remove_device(conn, OTHER, purge=True, actor="test", now=2.0)  # while the edge was down
    conn.close()
    second = service()
    assert second.publisher.connected.wait(10)
    # the previous run's retained configs come back through the subscription; the periodic check
    # (the daemon runs it every removal_check_s) then empties those of the removed device

    def checked_and_emptied():
        second.check_removed()
        second.drain()
        return len(watcher.configs()) == 3

    watcher.wait(checked_and_emptied, "the removed device's configs emptied")
    assert all(NODE in t for t in watcher.configs())


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"enabled": "yes"}, "homeassistant.enabled"),
        ({"port": 0}, "homeassistant.port"),
        ({"discovery_prefix": "home assistant"}, "homeassistant.discovery_prefix"),
        ({"host": "broker.example.org", "password": "x"}, "homeassistant.password"),
        ({"hots": "x"}, "homeassistant.hots"),
    ],
)
def test_bad_settings_name_the_key(table, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        parse_homeassistant(table)
