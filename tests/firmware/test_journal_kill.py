"""Kill -9 a virtual node 50 times at random points while it journals readings.

The node runs the real firmware under `micropython`, its clock 1000x fast, a reading
every 20 virtual seconds, the frame counter reserved 4 values at a time; its air peer
(tests/firmware/airpeer.py, a CPython stand-in for bridge + edge) acknowledges only
60 % of the uplinks, so unacknowledged readings pile up in the journal across kills.
Between some kills the newest segment also gets a torn record appended, as a power
cut in the middle of a write leaves on flash.
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

pytestmark = pytest.mark.firmware

KILLS = 50


def test_kill_nine_fifty_times_while_journaling(tmp_path, virtual_module):
    rng = random.Random(20261122)
    (node_port,) = free_udp_ports(1)
    peer = AirPeer(node_port, NODE_ID, NODE_KEY, ack_share=0.6, seed=3, time_scale=1000)
    try:
        ndir = module_dir(
            tmp_path,
            "node",
            id=NODE_ID,
            key=NODE_KEY.hex(),
            role="node",
            # the old air modem: at 1000x an emulated chip would need the host to switch from TX to
            # RX within microseconds; this test is about the journal, not the radio
            board="unix_air",
            dr=5,
            interval=20,
            time_scale=1000,
            rx_window=5,
            retry_base=1,
            retry_max=4,
            fcnt_block=4,
            journal_max=2000,
            journal_seg=512,
            duty_cycle=0,
            status_every=86400,
            trace=True,
            seed=1,
            safe_boots=100,
            air={"port": node_port, "peers": [peer.port]},
        )
        vm = virtual_module("main.py", ["config.json"], cwd=ndir, name="node")
        taken_before_kill: set[int] = set()
        first_fcnt_of_boot: list[int] = []
        torn = 0
        for i in range(KILLS):
            wait_until(
                lambda: any(line.startswith("fieldpost") for line in vm.output), timeout=10, what="boot"
            )
            # long enough a run for a few readings: each uplink waits for its receive windows
            time.sleep(rng.uniform(0.02, 0.2))
            vm.kill()
            lines = list(vm.output)
            boot = [line for line in lines if line.startswith("fieldpost")]
            first_fcnt_of_boot.append(int(boot[-1].rsplit("fcnt=", 1)[1]))
            taken_before_kill |= set(taken(vm))
            if i % 7 == 3:
                torn += tear_newest_segment(ndir / "journal", rng)
            vm.output.clear()
            vm.start()
        # the last boot runs on, with every uplink acknowledged, until the journal drains
        peer.ack_share = 1.0
        wait_until(
            lambda: taken_before_kill <= peer.received(),
            timeout=30,
            what="every reading taken before a kill delivered",
        )
        vm.stop()
        report = json.loads(run_mp("journal_report.py", cwd=ndir).stdout.splitlines()[-1])
    finally:
        peer.close()

    assert len(taken_before_kill) >= 100, "too few readings to mean anything"
    # no corrupted record was ever sent: every frame heard had a good MIC (signed when sent,
    # with the module's key) and a payload the node makes (a record damaged on flash would not
    # be: the journal's CRC must have refused it)
    assert peer.bad_mic == 0
    assert peer.malformed == []
    # the torn tails were seen and skipped on replay, never used
    assert torn > 0
    # the frame counter never repeated: no value carried two different frames, and
    # each boot started above everything used before it
    assert peer.repeats_with_other_bytes == []
    used = set()
    for fc in first_fcnt_of_boot:
        assert fc not in used
        used |= {f for f in peer.received() if f < fc}
        assert all(f < fc for f in used)
    # nothing was dropped for lack of room, so nothing taken was lost
    assert report["dropped"] == 0
    assert taken_before_kill <= peer.received()


def tear_newest_segment(journal, rng) -> int:
    """Append the first bytes of a record to the newest segment: a write cut short."""
    segments = sorted(journal.glob("s*.j"))
    if not segments:
        return 0
    partial = bytes([0xA5, 1, 29]) + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
    with open(segments[-1], "ab") as f:
        f.write(partial)
    return 1
