"""Safe mode that heals (issue 13): power cuts right after boot used to put a node in safe mode
for good (a radio-only node then stayed silent until re-provisioned). Now safe mode holds for
fp/bootguard.SAFE_HOLD_MS (doubled per entry in a row), then the role runs again and its first
status says why it was in safe mode; a stable run clears everything. Real firmware, real
`micropython`, kill -9 as the power cut; the node's air peer stands in for bridge + edge."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import wait_until
from tests.firmware.airpeer import AirPeer
from tests.firmware.conftest import run_mp
from tests.firmware.modules import NODE_ID, NODE_KEY, free_udp_ports, module_dir, taken

pytestmark = pytest.mark.firmware

SCALE = 20  # virtual ms per real ms: the 60 s hold takes 3 s
HOLD_S = 60  # fp/bootguard.SAFE_HOLD_MS, documented in firmware/README.md


def statuses(peer: AirPeer) -> list[dict]:
    with peer._lock:
        frames = list(peer.frames.values())
    return [json.loads(f[14:-4]) for f in frames if f[13] == 3]


def test_three_power_cuts_in_the_first_20_s_then_back_to_normal(tmp_path, virtual_module):
    (node_port,) = free_udp_ports(1)
    peer = AirPeer(node_port, NODE_ID, NODE_KEY, time_scale=SCALE)
    try:
        cfg = dict(
            id=NODE_ID,
            key=NODE_KEY.hex(),
            role="node",
            board="unix_air",
            dr=5,
            interval=30,
            time_scale=SCALE,
            rx_window=2,
            retry_base=1,
            retry_max=4,
            status_every=3600,
            safe_boots=3,
            trace=True,
            air={"port": node_port, "peers": [peer.port]},
        )
        ndir = module_dir(tmp_path, "node", **cfg)
        vm = virtual_module("main.py", ["config.json"], cwd=ndir, name="cut")
        for _ in range(3):  # each cut within the first 20 s of a boot
            wait_until(lambda: any(x.startswith("fieldpost 0") for x in vm.output), timeout=10, what="boot")
            vm.kill()
            vm.output.clear()
            vm.start()
        wait_until(lambda: "SAFE MODE: 3 crashed boots" in vm.output_text(), timeout=10, what="safe mode")
        entered = time.monotonic()
        # back to normal within the hold (HOLD_S virtual seconds) plus a boot: readings flow again
        wait_until(lambda: len(taken(vm)) >= 2, timeout=HOLD_S / SCALE + 10, what="readings after safe mode")
        assert time.monotonic() - entered >= HOLD_S / SCALE * 0.9  # it did hold (backed off)
        assert "safe mode over after 60 s" in vm.output_text()
        # the first status after it says why, once the radio works
        wait_until(lambda: any("s" in s for s in statuses(peer)), timeout=10, what="status with reason")
        assert [s["s"] for s in statuses(peer) if "s" in s] == ["3_crashed_boots"]
        # and a stable run (STABLE_MS, 20 s real) clears the counters: healed, not just paused
        wait_until(
            lambda: run_mp("boot_state.py", cwd=ndir).stdout.split() == ["0", "0"],
            timeout=30,
            what="boot counters cleared",
        )
        assert vm.running
    finally:
        peer.close()


def test_safe_mode_backs_off_doubling_and_a_stable_run_resets_it(micropython, tmp_path):
    out = run_mp("check_bootguard.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "holds 60 120 240 480 960 1920 3600 3600"  # capped at an hour
    assert lines[1] == "recovered x"
    assert lines[2] == "after stable 60 0"
    assert lines[3] == "old file 6"
