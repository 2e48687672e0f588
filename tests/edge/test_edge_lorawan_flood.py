"""10,000 forged frames and 10,000 random device ids cost bounded log lines and quarantine rows,
while the valid frames sent meanwhile are all stored."""

from __future__ import annotations

import logging
import os

from edge_helpers import add, stored
from lorawan_node import EndDevice, lpp_reading

from edge.ingest.writer import Ingestor, Item
from edge.lorawan import frames as F
from edge.lorawan import server
from edge.lorawan.network import Network
from edge.lorawan.settings import LoRaWANSettings
from edge.radio import AckResult, build_serial_uplink

DEV = "00000000000000d1"
BRIDGE = "bridge0000000001"


def test_floods_are_bounded_and_valid_frames_keep_flowing(db, caplog):
    t = [1_700_000_000.0]  # one second per batch: 80 s of flood
    net = Network(LoRaWANSettings(quarantine_max=100), clock=lambda: t[0])
    ingest = Ingestor(db, network=net, clock=lambda: t[0])
    key = add(db, DEV)
    node = EndDevice(DEV, key)
    answers: list[bytes] = []

    def item(payload):
        return Item(payload, BRIDGE, answers.append)

    (out,) = ingest.process_batch([item(node.join_request())])
    node.accept(answers.pop()[1:])
    forged_key = bytes(16)
    valid_results = []
    caplog.set_level(logging.INFO, logger="fieldpost")
    for batch in range(80):
        t[0] += 1.0
        items = []
        for k in range(125):
            n = batch * 125 + k
            # a forged frame claiming the node's DevAddr, and a join request of a random DevEUI
            items.append(
                item(
                    build_serial_uplink(
                        F.build_data(
                            F.CONFIRMED_UP, node.devaddr, n, 1, b"x", nwk_key=forged_key, app_key=forged_key
                        )
                    )
                )
            )
            items.append(
                item(build_serial_uplink(F.build_join_request(forged_key, bytes(8), os.urandom(8), 1)))
            )
        items.append(item(node.uplink(lpp_reading(batch % 50))))
        outcomes = ingest.process_batch(items)
        assert outcomes is not None
        valid_results.append(outcomes[-1].result)
        assert {o.result for o in outcomes[:-1]} == {AckResult.BAD_MIC, AckResult.UNKNOWN_DEVICE}
    assert valid_results == [AckResult.STORED] * 80
    assert len(stored(db, DEV)) == 80
    assert ingest.stats.results["bad_mic"] == 10_000 and ingest.stats.results["unknown_device"] == 10_000
    rejected_lines = [r for r in caplog.records if r.getMessage().startswith("uplink rejected")]
    # 20 lines a minute per result (bursts of 5): two results over 80 s, not 20,000 lines
    assert len(rejected_lines) <= 2 * (5 + 80 * 20 / 60 + 1), len(rejected_lines)
    held = [
        int(r.getMessage().split("suppressed=")[1]) for r in rejected_lines if "suppressed=" in r.getMessage()
    ]
    assert held and sum(held) > 1_000  # each line says how many were held back since the last
    assert db.execute("SELECT count(*) FROM quarantine").fetchone()[0] <= 100
    dropped = server.counter(db, "quarantine_dropped")
    assert dropped > 9_000 and dropped == net.stats["quarantine_dropped"]
    assert net.stats["mic_flood"] > 9_000
