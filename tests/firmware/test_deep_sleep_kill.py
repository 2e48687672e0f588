"""Kill -9 a deep-sleeping node 100 times at random points (issue 13).

The node runs the real firmware under `micropython` with `deep_reboot`: each deep sleep of 5 s or
more boots the firmware again, as an ESP32's does, its clock, schedule, frame counter position and
duty budget kept in the virtual board's RTC memory (fp/resume.py) and taken back after the wake.
A kill is a power cut: RTC memory is lost with the process, the next boot starts from flash. The
kills land while it sleeps, wakes, boots, journals and transmits. Its air peer (a CPython stand-in
for bridge + edge) acknowledges 60 % of the uplinks, so readings pile up across kills; some kills
also leave a torn record on flash, as a cut in the middle of a write does.
"""

from __future__ import annotations

import json
import random
import time

import pytest

from tests.conftest import wait_until
from tests.firmware.airpeer import AirPeer
from tests.firmware.conftest import run_mp
from tests.firmware.modules import NODE_ID, NODE_KEY, free_udp_ports, module_dir, taken
from tests.firmware.test_journal_kill import tear_newest_segment

pytestmark = pytest.mark.firmware

KILLS = 100
SCALE = 100


def test_kill_a_deep_sleeping_node_a_hundred_times(tmp_path, virtual_module):
    rng = random.Random(20261206)
    (node_port,) = free_udp_ports(1)
    peer = AirPeer(node_port, NODE_ID, NODE_KEY, ack_share=0.6, seed=5, time_scale=SCALE)
    try:
        ndir = module_dir(
            tmp_path,
            "node",
            id=NODE_ID,
            key=NODE_KEY.hex(),
            role="node",
            board="unix_air",
            dr=5,
            interval=20,
            time_scale=SCALE,
            rx_window=2,
            retry_base=6,
            retry_max=12,
            fcnt_block=4,
            journal_max=2000,
            journal_seg=512,
            duty_cycle=0,
            status_every=86400,
            deep_reboot=True,
            trace=True,
            seed=1,
            safe_boots=100,
            air={"port": node_port, "peers": [peer.port]},
        )
        vm = virtual_module("main.py", ["config.json"], cwd=ndir, name="node")
        taken_before_kill: set[int] = set()
        every_take: list[int] = []  # each reading's fcnt as it was taken, over every boot
        first_fcnt_of_boot: list[int] = []
        torn = wakes = 0
        for i in range(KILLS):
            wait_until(
                lambda: any(line.startswith("fieldpost 0") for line in vm.output), timeout=10, what="boot"
            )
            # long enough a run to deep-sleep between uplinks and their receive windows
            time.sleep(rng.uniform(0.05, 0.5))
            vm.kill()
            lines = list(vm.output)
            boots = [line for line in lines if line.startswith("fieldpost 0") and " fcnt=" in line]
            first_fcnt_of_boot += [int(b.rsplit("fcnt=", 1)[1]) for b in boots]
            wakes += sum(1 for line in lines if line == "fieldpost restart: reboot")
            every_take += taken(vm)
            taken_before_kill |= set(taken(vm))
            if i % 9 == 4:
                torn += tear_newest_segment(ndir / "journal", rng)
            vm.output.clear()
            vm.start()
        peer.ack_share = 1.0
        wait_until(
            lambda: taken_before_kill <= peer.received(),
            timeout=60,
            what="every reading taken before a kill delivered",
        )
        vm.stop()
        report = json.loads(run_mp("journal_report.py", cwd=ndir).stdout.splitlines()[-1])
    finally:
        peer.close()

    assert len(taken_before_kill) >= 100, "too few readings to mean anything"
    assert wakes >= KILLS // 2, "the node must have deep-slept (and booted again) often between the kills"
    # no corrupted record was ever sent, and every payload is one the node makes
    assert peer.bad_mic == 0
    assert peer.malformed == []
    assert torn > 0
    # the frame counter never gave one value to two different frames, across deep-sleep wakes
    # (resumed inside the block reserved on flash) and kills (RTC memory lost: from flash)
    assert peer.repeats_with_other_bytes == []
    assert len(every_take) == len(set(every_take)), "a frame counter value was taken twice"
    assert len(first_fcnt_of_boot) > KILLS
    # nothing taken was lost, and nothing dropped for lack of room
    assert report["dropped"] == 0
    assert taken_before_kill <= peer.received()
    print(f"kills={KILLS} wakes={wakes} readings={len(taken_before_kill)} torn={torn}")
