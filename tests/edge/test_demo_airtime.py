"""The demo's node interval respects the duty cycle (issue 13): every node and the bridge that
acknowledges them all stay within EU868's 1 % (36 s an hour), with room for resends, for any
number of demo modules. Airtimes from the Semtech formula (tests/firmware/air.py)."""

from __future__ import annotations

import pytest

from edge.demo import _module_config, demo_interval
from tests.firmware.air import time_on_air_us

UPLINK_BYTES = 24  # a standard reading's LoRaWAN frame: 13 bytes of header and MIC, 11 of LPP
ACK_BYTES = 12  # the bridge's acknowledging downlink (LoRaWAN, no FPort)
BUDGET_MS = 36_000  # 1 % of an hour


@pytest.mark.parametrize("nodes", [1, 2, 3, 8, 31])
def test_demo_nodes_and_bridge_fit_the_duty_cycle_with_room_for_resends(nodes):
    cfg = _module_config("de70000000000001", bytes(16), "node", 1, [2], 10, 1, nodes)
    assert cfg["interval"] == demo_interval(nodes) and cfg["dr"] == 5  # SF7
    per_hour = 3600 / cfg["interval"]
    node_ms = per_hour * time_on_air_us(UPLINK_BYTES, sf=7) / 1000
    bridge_ms = nodes * per_hour * time_on_air_us(ACK_BYTES, sf=7) / 1000
    # at most half of each budget in first sends: resends after a loss and status frames fit too
    assert node_ms <= BUDGET_MS / 2
    assert bridge_ms <= BUDGET_MS / 2
