"""Issue 13 item 3: the real entry point, main.py (config, supervisor, role), of a node and of a
bridge through a simulated day in a small heap, as a board runs it: the firmware compiled by
mpy-cross (edge.tools.build_firmware), main.py as source, under `micropython -X heapsize=...`.

Time is stepped through the HAL clock (tests/firmware/mp/main_day.py: the test's hardware is
the clock, the air and, for a bridge, the edge on its UART; everything else is the firmware).
The node joins (OTAA), sends a reading a minute and hears its ACK in RX1; the bridge forwards
two nodes' uplinks to the edge and sends each ACK downlink in the node's RX1."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from edge.tools.build_firmware import build_bundle, find_mpy_cross
from tests.firmware.conftest import MICROPYTHON, MP_SCRIPTS
from tests.firmware.modules import BRIDGE_ID, BRIDGE_KEY, NODE_ID, NODE_KEY

pytestmark = pytest.mark.firmware

# The smallest heaps (-X heapsize, this 64-bit unix port) in which each role's main.py runs the
# day. Issue 13 asks for 64K for both: NOT reached yet (see the figures in docs/firmware.md).
NODE_HEAP_K = 104
BRIDGE_HEAP_K = 124
HOURS = 24


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    build_bundle(out / "unix", None)
    # -s: a short source name, as a board's module names (each is interned in the heap)
    for name in ("main_day", "main_day_node", "main_day_bridge"):
        subprocess.run(
            [
                find_mpy_cross(),
                "-s",
                f"{name}.py",
                "-o",
                str(out / "unix" / f"{name}.mpy"),
                str(MP_SCRIPTS / f"{name}.py"),
            ],
            check=True,
        )
    return out / "unix"


def run_day(bundle, tmp_path, cfg: dict, heap_k: int) -> tuple[dict, str]:
    flash = tmp_path / "flash"
    shutil.copytree(bundle, flash)
    (flash / "config.json").write_text(json.dumps(cfg))
    out = subprocess.run(
        # imported, not run as __main__: the role's stand-ins (main_day_node, main_day_bridge) take from it
        [str(MICROPYTHON), "-X", f"heapsize={heap_k}K", "-c", "import main_day", str(HOURS)],
        cwd=flash,
        # a board has no environment; the caller's moves the C stack the GC scans conservatively
        env={"MICROPYPATH": ":.frozen"},
        stdin=subprocess.DEVNULL,  # open, as a board's UART REPL (fd 0 closed changes the heap)
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "MemoryError" not in text, text[-3000:]
    assert "fieldpost restart" not in text, text[-3000:]
    boots = [line for line in out.stdout.splitlines() if line.startswith("fieldpost ") and cfg["id"] in line]
    assert len(boots) == 1, text[-3000:]
    day = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("day "))[4:])
    assert day["virtual_ms"] >= HOURS * 3_600_000
    assert day["peak_live"] < day["heap_total"]
    print(
        f"main.py {cfg['role']} day in {heap_k}K: live at boot {day['boot_live']} B, peak live "
        f"{day['peak_live']} B, peak allocated {day['peak_alloc']} B of {day['heap_total']} B"
    )
    return day, text


def test_node_main_runs_a_day_in_its_heap(bundle, tmp_path):
    cfg = {
        "id": NODE_ID,
        "key": NODE_KEY.hex(),
        "role": "node",
        "dr": 5,
        "interval": 60,
        "status_every": 3600,
        "seed": 1,
    }
    day, _ = run_day(bundle, tmp_path, cfg, NODE_HEAP_K)
    assert day["joins"] == 1
    # a reading a minute (statuses and resends besides), every 10th frame lost on the air
    assert day["tx"] >= HOURS * 60
    assert day["rx"] >= 0.85 * day["tx"] and day["acks"] >= HOURS * 60 * 0.85


def test_bridge_main_runs_a_day_in_its_heap(bundle, tmp_path):
    cfg = {
        "id": BRIDGE_ID,
        "key": BRIDGE_KEY.hex(),
        "role": "bridge",
        "dr": 5,
        "status_every": 300,
        "seed": 3,
    }
    day, _ = run_day(bundle, tmp_path, cfg, BRIDGE_HEAP_K)
    heard = HOURS * 60 - 1
    assert day["rx"] >= heard and day["uplinks"] == day["rx"]  # every uplink forwarded
    assert day["tx"] == day["rx"]  # every ACK downlink sent, in its RX1
    assert day["status"] >= HOURS * 12 - 1
