"""Topic profiles and link policies against a real Mosquitto: ThingsBoard gateway API, CBOR,
MQTT 5, alarms first, and the daily bandwidth budget."""

from __future__ import annotations

import json
import subprocess
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sync_helpers import (
    DEVICES,
    CloudSubscriber,
    add_devices,
    assert_complete_and_ordered,
    buffer_readings,
    sync_config,
    unsynced,
    wait_for,
)

from edge import alarms
from edge.sync import SyncService, sync_status
from edge.sync.encoding import decode_envelope

UP = "fieldpost/testsite/+/up"


def _tb_config(port):
    return sync_config(port, mqtt={"profile": "thingsboard"})


def test_thingsboard_gateway_connect_then_telemetry(broker, db):
    path, conn = db
    ids = buffer_readings(conn, 300, DEVICES[:3])
    sub = CloudSubscriber(broker.port, ["v1/gateway/#"]).start()
    service = SyncService(path, _tb_config(broker.port)).start()
    try:
        wait_for(lambda: unsynced(conn) == 0, 20, "rows synced")
        wait_for(
            lambda: sum(1 for t, _ in sub.raw if t == "v1/gateway/telemetry") >= 2,
            10,
            "telemetry",
        )
    finally:
        service.stop()
        sub.stop()
    connected: list[str] = []
    values_by_id = {}
    for topic, payload in sub.raw:
        doc = json.loads(payload)
        if topic == "v1/gateway/connect":
            connected.append(doc["device"])
            continue
        assert topic == "v1/gateway/telemetry"
        for device, entries in doc.items():
            assert device in connected, "a device is connected before its first telemetry"
            for entry in entries:
                assert isinstance(entry["ts"], int) and entry["ts"] > 1e12  # milliseconds
                values_by_id[entry["values"]["msg_id"]] = (device, entry["values"])
    assert sorted(connected) == sorted(DEVICES[:3])
    assert set(values_by_id) == set(ids)
    device, values = values_by_id[ids[0]]
    assert device == DEVICES[0] and values["fcnt"] == 0
    assert set(values) >= {"temperature", "humidity", "rssi", "snr", "msg_id"}


def test_thingsboard_rpc_is_queued_and_answered(broker, db):
    path, conn = db
    add_devices(conn)
    replies: list[dict] = []
    cloud = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tb-server")
    cloud.on_message = lambda c, u, m: replies.append(json.loads(m.payload))
    cloud.connect("127.0.0.1", broker.port)
    cloud.subscribe("v1/gateway/rpc", qos=1)
    cloud.loop_start()
    service = SyncService(path, _tb_config(broker.port)).start()
    try:
        wait_for(lambda: service.connected, 10, "sync connected")
        request = {
            "device": DEVICES[1],
            "data": {
                "id": 42,
                "method": "set_output",
                "params": {"output": 3, "value": 1},
            },
        }
        cloud.publish("v1/gateway/rpc", json.dumps(request), qos=1).wait_for_publish(5)
        bad = {
            "device": DEVICES[1],
            "data": {"id": 43, "method": "set_interval", "params": {"seconds": "soon"}},
        }
        cloud.publish("v1/gateway/rpc", json.dumps(bad), qos=1).wait_for_publish(5)
        answers = wait_for(
            lambda: [r for r in replies if "data" in r and "method" not in r["data"]],
            10,
            "answers",
        )
        wait_for(
            lambda: len([r for r in replies if "method" not in r.get("data", {})]) >= 2,
            10,
            "both answers",
        )
    finally:
        service.stop()
        cloud.disconnect()
        cloud.loop_stop()
    answers = {r["id"]: r for r in replies if "method" not in r.get("data", {})}
    row = conn.execute("SELECT * FROM downlinks").fetchone()
    assert (row["device_id"], row["command"], json.loads(row["args"])) == (
        DEVICES[1],
        "set_output",
        {"output": 3, "value": 1},
    )
    assert answers[42] == {
        "device": DEVICES[1],
        "id": 42,
        "data": {"status": "queued", "downlink": row["id"]},
    }
    assert answers[43]["data"]["status"] == "failed" and answers[43]["data"]["field"] == "seconds"
    assert conn.execute("SELECT count(*) FROM downlinks").fetchone()[0] == 1


def test_cbor_encoding_over_mqtt5(broker, db):
    path, conn = db
    ids = buffer_readings(conn, 2000)
    sub = CloudSubscriber(broker.port, [UP]).start()
    service = SyncService(path, sync_config(broker.port, mqtt={"encoding": "cbor", "protocol": "5"})).start()
    try:
        wait_for(lambda: sub.count() == len(ids), 20, "all readings")
    finally:
        service.stop()
        sub.stop()
    assert_complete_and_ordered(sub, ids)
    topic, payload = sub.raw[0]
    doc = decode_envelope(payload)
    assert payload[:2] == b"\x1f\x8b" and doc["v"] == 1 and doc["site"] == "testsite"
    assert topic == f"fieldpost/testsite/{doc['device']}/up"


def test_an_alarm_raised_during_a_backlog_overtakes_the_readings(broker_factory, db):
    path, conn = db
    broker = broker_factory(start=False)
    buffer_readings(conn, 5000)
    alarm_id = alarms.raise_alarm(
        conn,
        rule="freezer",
        device_id=DEVICES[0],
        severity="critical",
        message="freezer above 8 °C for 10 minutes",
        value=9.1,
        now=time.time(),
    )
    broker.start()
    sub = CloudSubscriber(broker.port, [UP]).start()
    service = SyncService(path, sync_config(broker.port)).start()
    try:
        wait_for(lambda: unsynced(conn) == 0, 20, "rows synced")
        wait_for(lambda: sub.count() == 5001, 10, "everything at the cloud")
    finally:
        service.stop()
        sub.stop()
    first = decode_envelope(sub.raw[0][1])
    assert [m["id"] for m in first["messages"]] == [f"alarm:{alarm_id}:raised"]
    assert first["messages"][0]["kind"] == "alarm"


def test_the_daily_budget_keeps_room_for_alarms(broker, db):
    path, conn = db
    buffer_readings(conn, 2000)
    budget = {
        "bytes_per_day": 12_000,
        "shares": {"alarms": 1.0, "readings": 0.5, "bulk": 0.2},
    }
    sub = CloudSubscriber(broker.port, [UP]).start()
    service = SyncService(path, sync_config(broker.port, batch_max_messages=50, budget=budget)).start()
    try:
        # Readings flow until they have used their half of the day's budget, then stop.
        wait_for(lambda: service.budget_held_from == 1, 10, "the readings' share used up")
        wait_for(
            lambda: service.in_flight == 0 and sub.count() == service.messages_acked > 0,
            10,
            "sent readings delivered",
        )
        readings_sent = sub.count()
        status = sync_status(conn, time.time())
        assert 0 < readings_sent < 2000 and unsynced(conn) == 2000 - readings_sent
        assert status["bytes_today"] <= 12_000 * 0.5
        # An alarm still goes out from the share kept for alarms.
        alarm_id = alarms.raise_alarm(
            conn,
            rule="tank",
            device_id=DEVICES[2],
            severity="critical",
            message="tank dry",
            now=time.time(),
        )
        wait_for(
            lambda: f"alarm:{alarm_id}:raised" in sub.distinct,
            10,
            "the alarm despite the budget",
        )
        wait_for(
            lambda: service.messages_acked == readings_sent + 1,
            10,
            "the alarm acknowledged",
        )
        assert sub.count() == readings_sent + 1, "readings stay held until tomorrow's budget"
        assert service.budget_held_from == 1
    finally:
        service.stop()
        sub.stop()
    assert sync_status(conn, time.time())["bytes_today"] <= 12_000


def test_username_and_password(broker_factory, db, tmp_path):
    path, conn = db
    passwords = tmp_path / "passwd"
    passwords.write_text("")
    subprocess.run(
        ["mosquitto_passwd", "-b", str(passwords), "farm-12", "s3cret"],
        check=True,
        timeout=30,
    )
    broker = broker_factory("auth", password_file=passwords)
    buffer_readings(conn, 100)

    wrong = sync_config(broker.port, mqtt={"username": "farm-12", "password": "guess"})
    service = SyncService(path, wrong).start()
    try:
        wait_for(
            lambda: sync_status(conn, time.time())["last_error"],
            10,
            "the refusal recorded",
        )
    finally:
        service.stop()
    assert "refused" in sync_status(conn, time.time())["last_error"] and unsynced(conn) == 100

    right = sync_config(broker.port, mqtt={"username": "farm-12", "password": "s3cret"})
    service = SyncService(path, right).start()
    try:
        wait_for(lambda: unsynced(conn) == 0, 10, "rows synced with the right password")
    finally:
        service.stop()
