"""Downlinks from the cloud through a real Mosquitto: validated, queued with expiry, statuses back."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sync_helpers import DEVICES, CloudSubscriber, add_devices, sync_config, wait_for

from edge import downlinks
from edge.radio import DownlinkResult
from edge.store import transaction
from edge.sync import SyncService

DEV = DEVICES[0]
DOWN = f"fieldpost/testsite/{DEV}/down"


def _publish(port: int, topic: str, doc) -> None:
    """The cloud sends a request: QoS 1, from its own client, waiting for the broker's PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cloud-cmd-{time.monotonic_ns()}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        payload = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def _statuses(sub: CloudSubscriber) -> dict[str, dict]:
    with sub.lock:
        return {msg_id: bodies[0] for msg_id, bodies in sub.bodies.items() if msg_id.startswith("downlink")}


def _rows(conn) -> list[dict]:
    return [dict(r) for r in conn.execute("SELECT * FROM downlinks ORDER BY id")]


@pytest.fixture
def cloud(broker, db):
    path, conn = db
    add_devices(conn)
    sub = CloudSubscriber(broker.port, ["fieldpost/testsite/+/up"]).start()
    service = SyncService(path, sync_config(broker.port)).start()
    wait_for(lambda: service.connected, 10, "sync connected")
    yield broker, conn, sub, service
    service.stop()
    sub.stop()


def test_a_cloud_downlink_is_validated_queued_with_expiry_and_its_statuses_flow_back(
    cloud,
):
    broker, conn, sub, _ = cloud
    t0 = time.time()
    _publish(
        broker.port,
        DOWN,
        {
            "id": "req-1",
            "command": "set_interval",
            "args": {"seconds": 60},
            "ttl_s": 600,
        },
    )
    row = wait_for(lambda: _rows(conn), 10, "the downlink queued")[0]
    assert (row["device_id"], row["command"], json.loads(row["args"])) == (
        DEV,
        "set_interval",
        {"seconds": 60},
    )
    assert row["source"] == "cloud" and row["status"] == "queued"
    assert row["expires_at"] - row["created_at"] == pytest.approx(600) and row["created_at"] >= t0 - 1
    dl = row["id"]

    statuses = wait_for(
        lambda: (s := _statuses(sub)) and len(s) >= 2 and s,
        10,
        "queued statuses at the cloud",
    )
    assert statuses[f"downlink:{dl}:queued"]["status"] == "queued"
    # The answer to the cloud's own request id names the edge's downlink id (later statuses use it).
    answer = statuses[f"downlink-request:{DEV}:req-1"]
    assert (answer["request"], answer["downlink"], answer["status"]) == (
        "req-1",
        dl,
        "queued",
    )

    # The node's next uplink carries it (sent), the node answers (acked): each status reaches the cloud.
    with transaction(conn):
        assert downlinks.take_for_uplink(conn, DEV, 7, now=time.time()).id == dl
    with transaction(conn):
        downlinks.record_result(conn, DEV, DownlinkResult(dl & 0xFFFF, 0, ""), now=time.time())
    wait_for(lambda: f"downlink:{dl}:acked" in _statuses(sub), 10, "sent and acked statuses")
    statuses = _statuses(sub)
    assert statuses[f"downlink:{dl}:sent"]["status"] == "sent"
    assert statuses[f"downlink:{dl}:acked"]["status"] == "acked"
    # Per device, statuses arrive in the order they happened.
    order = [i for i in sub.arrivals[DEV] if i.startswith(f"downlink:{dl}:")]
    assert order == [
        f"downlink:{dl}:queued",
        f"downlink:{dl}:sent",
        f"downlink:{dl}:acked",
    ]


def test_a_redelivered_request_is_queued_once(cloud):
    broker, conn, _, _ = cloud
    request = {"id": "req-9", "command": "reboot"}
    _publish(broker.port, DOWN, request)
    wait_for(lambda: _rows(conn), 10, "the downlink queued")
    _publish(broker.port, DOWN, request)  # the broker redelivering after a lost PUBACK looks like this
    _publish(broker.port, DOWN, {"id": "req-10", "command": "request_status"})
    wait_for(lambda: len(_rows(conn)) == 2, 10, "the second request queued")
    assert [r["command"] for r in _rows(conn)] == ["reboot", "request_status"]


def test_invalid_requests_are_refused_with_the_field_named(cloud):
    broker, conn, sub, _ = cloud
    _publish(
        broker.port,
        DOWN,
        {"id": "bad-1", "command": "set_interval", "args": {"seconds": 5}},
    )
    _publish(broker.port, DOWN, {"id": "bad-2", "command": "self_destruct"})
    _publish(broker.port, DOWN, b"{not json")
    _publish(
        broker.port,
        "fieldpost/testsite/ffffffffffffffff/down",
        {"id": "bad-3", "command": "reboot"},
    )
    statuses = wait_for(
        lambda: (s := _statuses(sub)) and len(s) >= 4 and s,
        10,
        "four refusals at the cloud",
    )
    assert _rows(conn) == []
    fields = {s["request"]: s["field"] for s in statuses.values()}
    assert fields == {
        "bad-1": "seconds",
        "bad-2": "command",
        None: "payload",
        "bad-3": "device_id",
    }
    assert all(s["status"] == "failed" and s["downlink"] is None for s in statuses.values())


def test_downlinks_sent_while_the_edge_is_offline_wait_in_its_persistent_session(broker, db):
    path, conn = db
    add_devices(conn)
    service = SyncService(path, sync_config(broker.port)).start()
    wait_for(
        lambda: service.connected,
        10,
        "sync connected once (the broker now knows the session)",
    )
    service.stop()
    _publish(
        broker.port,
        DOWN,
        {
            "id": "while-away",
            "command": "set_output",
            "args": {"output": 2, "value": 1},
        },
    )
    assert _rows(conn) == []
    service = SyncService(path, sync_config(broker.port)).start()
    try:
        row = wait_for(lambda: _rows(conn), 10, "the downlink delivered from the session")[0]
    finally:
        service.stop()
    assert (row["command"], json.loads(row["args"])) == (
        "set_output",
        {"output": 2, "value": 1},
    )


def test_an_unsent_downlink_expires_and_the_cloud_hears_it(cloud):
    broker, conn, sub, _ = cloud
    _publish(broker.port, DOWN, {"id": "short", "command": "request_status", "ttl_s": 1})
    dl = wait_for(lambda: _rows(conn), 10, "queued")[0]["id"]
    with transaction(conn):
        assert downlinks.expire(conn, now=time.time() + 2) == 1
    wait_for(
        lambda: f"downlink:{dl}:expired" in _statuses(sub),
        10,
        "the expired status at the cloud",
    )
