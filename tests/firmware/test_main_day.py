"""Issue 13 item 3: the real entry point, main.py (config, supervisor, role), of a node and of a
bridge through a simulated day in a small heap, as a board runs it (tests/firmware/mainday.py).

Time is stepped through the HAL clock (tests/firmware/mp/main_day.py: the test's hardware is
the clock, the air and, for a bridge, the edge on its UART; everything else is the firmware).
The node joins (OTAA), sends a reading a minute and hears its ACK in RX1; the bridge forwards
two nodes' uplinks to the edge and sends each ACK downlink in the node's RX1."""

from __future__ import annotations

import pytest

from tests.firmware import mainday

pytestmark = pytest.mark.firmware

HOURS = 24


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return mainday.build(tmp_path_factory.mktemp("bundle") / "unix")


def run_day(bundle, tmp_path, role: str, heap_k: int) -> dict:
    day, boots, lines = mainday.run(bundle, tmp_path, role, heap_k, HOURS)
    text = "\n".join(lines)[-3000:]
    assert day is not None, text
    assert not [line for line in lines if "MemoryError" in line], text
    assert not [line for line in lines if line.startswith("fieldpost restart")], text
    assert len(boots) == 1, text
    assert day["virtual_ms"] >= HOURS * 3_600_000
    assert day["peak_live"] < day["heap_total"]
    print(
        f"main.py {role} day in {heap_k}K: live at boot {day['boot_live']} B, peak live "
        f"{day['peak_live']} B, peak allocated {day['peak_alloc']} B of {day['heap_total']} B "
        f"(the harness alone {day['harness']} B)"
    )
    return day


def test_node_main_runs_a_day_in_its_heap(bundle, tmp_path):
    day = run_day(bundle, tmp_path, "node", mainday.heap_k("node"))
    assert day["joins"] == 1
    # a reading a minute (statuses and resends besides), every 10th frame lost on the air
    assert day["tx"] >= HOURS * 60
    assert day["rx"] >= 0.85 * day["tx"] and day["acks"] >= HOURS * 60 * 0.85


def test_bridge_main_runs_a_day_in_its_heap(bundle, tmp_path):
    day = run_day(bundle, tmp_path, "bridge", mainday.heap_k("bridge"))
    heard = HOURS * 60 - 1
    assert day["rx"] >= heard and day["uplinks"] == day["rx"]  # every uplink forwarded
    assert day["tx"] == day["rx"]  # every ACK downlink sent, in its RX1
    assert day["status"] >= HOURS * 12 - 1
