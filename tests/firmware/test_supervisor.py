"""The watchdog supervisor (fp/supervisor.py) under micropython's own asyncio, and in running modules."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_until
from tests.firmware.conftest import run_mp
from tests.firmware.edgepeer import EdgePeer
from tests.firmware.modules import (
    BRIDGE_ID,
    BRIDGE_KEY,
    NODE_ID,
    NODE_KEY,
    bridge_config,
    free_udp_ports,
    module_dir,
    node_config,
)

pytestmark = pytest.mark.firmware


def test_crash_and_stall_stop_the_watchdog_and_are_logged(micropython):
    out = run_mp("check_supervisor.py")
    assert out.returncode == 0, out.stderr
    crash, stall, timer, oom = out.stdout.splitlines()
    # a crashing task: the watchdog was fed before, the reason carries the traceback, one LOG line
    assert crash == "crash True True True 1"
    # a task that stops beating is caught too, and logged as an error
    assert stall == "stall True True error"
    # a task started with watch=False (a timer that never beats) outlives 5 timeouts; its crash counts
    assert timer == "timer True True True"
    # a task that dies of MemoryError on a heap with no room for its traceback or a log line: stopped
    # at once (within 1 s, not the 2 s stall timeout), the reason a constant
    assert oom == "oom a task crashed: out of memory True"


@pytest.mark.parametrize("scale", [20, 1800])
def test_healthy_modules_never_restart_at_accelerated_time(tmp_path, virtual_module, scale):
    """A node and a bridge (real firmware, real micropython) with the shortest watchdog (2 s real)
    run ~10 s real at time_scale 20 and 1800 without the supervisor restarting them. Before the
    fix the boot-stable timer and the bridge's link pump never beat, so every module restarted
    once watchdog_s of real time had passed ("task stable stalled for 30006 ms")."""
    node_port, bridge_port = free_udp_ports(2)
    half_s = max(10, scale // 2)  # virtual seconds that take half a real second
    bcfg = bridge_config(bridge_port, node_port, time_scale=scale, watchdog_s=2, status_every=half_s)
    ncfg = node_config(
        node_port,
        bridge_port,
        time_scale=scale,
        watchdog_s=2,
        interval=half_s,
        trace=False,
        retry_base=max(1, scale // 20),
        retry_max=half_s,
    )
    bridge = virtual_module(
        "main.py", ["config.json"], cwd=module_dir(tmp_path, "bridge", **bcfg), name="bridge"
    )
    edge = EdgePeer(bridge.port, {NODE_ID: NODE_KEY, BRIDGE_ID: BRIDGE_KEY})
    try:
        wait_until(lambda: edge.sessions, timeout=10, what="HELLO from the bridge")
        node = virtual_module(
            "main.py", ["config.json"], cwd=module_dir(tmp_path, "node", **ncfg), name="node"
        )
        end = time.monotonic() + 10  # five watchdog periods, real time
        while time.monotonic() < end:
            assert not _restarts(bridge) and not _restarts(node)
            time.sleep(0.2)
        # they were working, not idle: the node's uplinks through the bridge (at 1800 the 3 s
        # receive window is under 2 ms real, too short for the join accept or the ACK: the node
        # keeps trying to join, each request with a new DevNonce), STATUS from the bridge
        uplinks = sum(n for (dev, _), n in edge.arrivals.items() if dev == NODE_ID) + edge.joins.count(
            NODE_ID
        )
        assert (edge.readings(NODE_ID) or edge.joins) and edge.statuses
        assert uplinks >= 3
        assert bridge.running and node.running
        assert not _restarts(bridge) and not _restarts(node)
        # one boot each
        for vm in (bridge, node):
            assert sum(line.startswith("fieldpost 0.") for line in vm.output) == 1, vm.output_text()
    finally:
        edge.close()


def _restarts(vm) -> list[str]:
    return [line for line in vm.output if "restart" in line or "stalled" in line]


def test_pico_watchdog_is_clamped_to_the_rp2040_maximum_with_a_warning(tmp_path, virtual_module):
    """Issue 13: a 30 s watchdog asked on the Pico profile (RP2040, at most 8388 ms) used to fail
    at boot on the board; now it is clamped, said once, and the node runs (its sleep slices are
    a quarter of the clamped timeout, so the supervisor sees it alive)."""
    node_port, bridge_port = free_udp_ports(2)
    cfg = node_config(
        node_port,
        bridge_port,
        board="pico_rfm95w",
        watchdog_s=30,
        time_scale=1,
        interval=60,
        retry_base=60,
        retry_max=120,
    )
    vm = virtual_module("main.py", ["config.json"], cwd=module_dir(tmp_path, "pico", **cfg), name="pico")
    wait_until(lambda: "clamped to 8388 ms" in vm.output_text(), timeout=10, what="clamp warning")
    assert "watchdog 30000 ms above the rp2040 maximum" in vm.output_text()
    time.sleep(12)  # longer than the clamped watchdog: no stall while the node sleeps between readings
    assert vm.running and "restart" not in vm.output_text()
