"""End to end (issue 13 item 9): readings that waited 2 h in a node's journal while the bridge was
down are stored, and reach the cloud, with the time they were measured, not the time they arrived.

Real pieces only: the firmware under the MicroPython unix port (a LoRaWAN node and a bridge, radio
over loopback UDP, the bridge's UART on a pty), the edge daemon (link manager, ingest, sync from its
config), a Mosquitto broker and a cloud subscriber. Time runs SCALE times faster on the modules
(their ``time_scale``) and on the edge (the daemon's injected clock), so the 2 h outage takes
2 h / SCALE of real time.

The truth is the node's own clock: it traces each reading's sample time ("T sampled (fcnt, ms)").
The node's clock and the edge's run at the same rate from different origins; the offset between
them is what fresh readings show (received = measured for a reading sent as it was sampled). A
reading that waited must then be stored at sample time + offset, within 2 s, and sent to the
cloud with exactly the stored measured time as its timestamp.
"""

from __future__ import annotations

import ast
import statistics
import time

import pytest
from sync_helpers import CloudSubscriber, sync_config, wait_for

from edge.daemon import Daemon
from edge.store.query import ReadingReader
from tests.firmware.modules import trace
from tests.sitekit import NODE_ID, register_modules, site_config, start_bridge

pytestmark = pytest.mark.firmware

SCALE = 90  # virtual seconds per real second, on the modules and on the edge
INTERVAL_S = 600
OUTAGE_S = 2 * 3600
TOLERANCE_S = 2.0


def sampled(node) -> dict[int, float]:
    """{fcnt: sample time, node clock, s} from the node's trace."""
    out = {}
    for value in trace(node, "sampled"):
        fcnt, ms = ast.literal_eval(value)
        out[fcnt] = ms / 1000
    return out


def node_readings(conn) -> dict:
    reader = ReadingReader(conn)
    try:
        return {r.fcnt: r for r in reader.device_readings(NODE_ID) if r.port == 1}
    finally:
        reader.close()


def test_readings_held_two_hours_while_the_bridge_was_down_keep_their_measurement_time(
    broker, tmp_path, db, virtual_module
):
    db_path, conn = db
    start = time.time()
    register_modules(conn, now=start)
    # rx_window 30 s of the node's clock is 0.33 s real: room for the ACK's round trip under load
    timing = {"time_scale": SCALE, "rx_window": 30}
    site = start_bridge(
        tmp_path,
        virtual_module,
        node={"interval": INTERVAL_S, "status_every": 86400, "trace": True, **timing},
        bridge={"status_every": 86400, "interval": 86400, **timing},
    )
    m0 = time.monotonic()

    def clock():  # the edge's clock, scaled like the modules'
        return start + (time.monotonic() - m0) * SCALE

    section = sync_config(broker.port)
    section.pop("site")
    config = site_config(db_path, site.bridge, edge={"site": "testsite"}, sync=section)
    sub = CloudSubscriber(broker.port, ["fieldpost/testsite/+/up"]).start()
    daemon = Daemon(config, clock=clock, attach_points=("edge.sync.service:attach",)).start()
    try:
        node = site.start_node()
        wait_for(lambda: len(node_readings(conn)) >= 2, 60, "two fresh readings stored")
        site.bridge.kill()  # the bridge is down: the node keeps its readings in its journal
        down_at = max(sampled(node).values())
        wait_for(
            lambda: max(sampled(node).values()) - down_at >= OUTAGE_S + INTERVAL_S,
            OUTAGE_S / SCALE * 3,
            "2 h of the node's clock with the bridge down",
        )
        held = {f for f, t in sampled(node).items() if t > down_at}
        site.bridge.start()
        wait_for(lambda: held <= set(node_readings(conn)), 120, "the held readings stored")
        # and fresh readings again after the backlog
        wait_for(
            lambda: len([r for r in node_readings(conn).values() if not r.age_s and r.fcnt > max(held)]) >= 2,
            120,
            "fresh readings after the backlog",
        )
        wait_for(
            lambda: all(f"{NODE_ID}:{f}" in sub.distinct for f in node_readings(conn)),
            60,
            "every reading at the cloud",
        )
    finally:
        daemon.stop()
        sub.stop()

    times = sampled(node)
    stored = node_readings(conn)
    fresh = [r for r in stored.values() if not r.age_s]
    aged = [r for r in stored.values() if r.age_s]
    # (the boot reading waits for the join: it arrives aged, by seconds)
    assert len(fresh) >= 3 and len(aged) >= OUTAGE_S // INTERVAL_S
    # the clocks' offset, from readings sent as they were sampled (received = measured)
    offset = statistics.median(r.measured_at - times[r.fcnt] for r in fresh)
    errors = {r.fcnt: round(r.measured_at - (times[r.fcnt] + offset), 3) for r in stored.values()}
    oldest = min((r for r in aged if r.fcnt in held), key=lambda r: r.fcnt)
    assert oldest.age_s >= OUTAGE_S, "no reading waited the 2 h the test is about"
    assert all(abs(e) <= TOLERANCE_S for e in errors.values()), errors
    # the receive time is kept beside it: an aged reading arrived age_s after it was measured
    for r in aged:
        assert r.received_at - r.measured_at == r.age_s
    # the cloud got the measured time as the message's timestamp, the receive time beside it
    with sub.lock:
        bodies = {f: sub.bodies[f"{NODE_ID}:{f}"][-1] for f in stored}
    for f, r in stored.items():
        assert bodies[f]["ts"] == r.measured_at, f
        if r.age_s:
            assert bodies[f]["received"] == r.received_at, f
        else:
            assert "received" not in bodies[f], f
