"""End to end: a cloud downlink through Mosquitto reaches a virtual node, is applied, and its status comes back.

Real pieces only: the firmware under the MicroPython unix port (a node and a bridge,
radio over loopback UDP, the bridge's UART on a pty), the edge daemon (link manager,
ingest) with sync attached from its config, a Mosquitto broker and a cloud client.
"""

from __future__ import annotations

import json
import time

import pytest
from sync_helpers import CloudSubscriber, sync_config, wait_for

from edge.daemon import Daemon
from edge.store import connect, migrate
from tests.sitekit import NODE_ID, register_modules, site_config, start_bridge

pytestmark = pytest.mark.firmware


def _publish(port: int, topic: str, doc: dict) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cloud-command")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, json.dumps(doc), qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


def test_cloud_downlink_reaches_the_virtual_node_is_applied_and_reported(broker, tmp_path, virtual_module):
    db_path = tmp_path / "edge.db"
    conn = connect(db_path)
    migrate(conn)
    register_modules(conn, now=time.time())
    site = start_bridge(tmp_path, virtual_module, node={"interval": 10, "trace": False}, bridge={})

    section = sync_config(broker.port)
    section.pop("site")
    config = site_config(db_path, site.bridge, edge={"site": "testsite"}, sync=section)
    sub = CloudSubscriber(broker.port, ["fieldpost/testsite/+/up"]).start()
    daemon = Daemon(config, attach_points=("edge.sync.service:attach",)).start()
    try:
        site.start_node()
        wait_for(
            lambda: any(i.startswith(f"{NODE_ID}:") for i in sub.arrivals.get(NODE_ID, [])),
            30,
            "the node's first reading at the cloud",
        )

        _publish(
            broker.port,
            f"fieldpost/testsite/{NODE_ID}/down",
            {
                "id": "cloud-77",
                "command": "set_interval",
                "args": {"seconds": 30},
                "ttl_s": 600,
            },
        )

        def acked_id():
            with sub.lock:
                ids = list(sub.arrivals.get(NODE_ID, []))
            return next(
                (i for i in ids if i.startswith("downlink:") and i.endswith(":acked")),
                None,
            )

        acked = wait_for(acked_id, 60, "the node's acknowledgement back at the cloud")
    finally:
        daemon.stop()
        sub.stop()
    dl_id = int(acked.split(":")[1])
    with sub.lock:
        statuses = [i for i in sub.arrivals[NODE_ID] if i.startswith(f"downlink:{dl_id}:")]
        answer = sub.bodies[f"downlink-request:{NODE_ID}:cloud-77"][0]
    assert statuses[:3] == [
        f"downlink:{dl_id}:queued",
        f"downlink:{dl_id}:sent",
        f"downlink:{dl_id}:acked",
    ]
    assert answer["downlink"] == dl_id and answer["status"] == "queued"
    row = conn.execute("SELECT status, source, sent_fcnt FROM downlinks WHERE id = ?", (dl_id,)).fetchone()
    assert (row["status"], row["source"]) == ("acked", "cloud") and row["sent_fcnt"] is not None
    # Applied: the node's own configuration file now has the new interval.
    assert json.loads((site.node_dir / "config.json").read_text())["interval"] == 30
    conn.close()
