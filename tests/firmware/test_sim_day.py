"""A simulated day of a node at a 1-minute interval at SF12 (EU868 DR0), time stepped
through the HAL clock, under `micropython -X heapsize=64K`.

The node code runs from a bytecode bundle built by edge.tools.build_firmware (as it
runs on a board: compiled, not compiled at import); the medium is the SimMedium
stand-in in tests/firmware/mp/sim_day.py. The duty cycle is checked here, from the
transmissions the node made, not from the firmware's own accounting."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from edge.tools.build_firmware import build_bundle
from tests.firmware.conftest import MICROPYTHON, compile_scripts

pytestmark = pytest.mark.firmware

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    build_bundle(out / "unix", None)
    # named as a board's modules are (no checkout path interned in the 64K heap: the day once
    # passed in one clone and failed in another)
    compile_scripts(out, ("sim_day", "sim_abp"))
    return out


def run_day(bundle, cwd, *, hours=24, interval=60, dr=0, loss=0.1, heapsize="64K", region="EU868", activation="v1"):
    # As on a board, the files are at the root the node runs in and are found from there ("" on
    # the path): every module's name is then as short as a board's ("fp/journal.mpy"), which a
    # 64K heap notices (a long test folder in each name cost over 1 KB).
    root = cwd / "flash"
    shutil.copytree(bundle / "unix", root)
    shutil.copy(bundle / "sim_day.mpy", root)
    shutil.copy(bundle / "sim_abp.mpy", root)
    cwd = root
    # only what the node needs: a board has no environment, and the caller's (pytest-xdist adds to it)
    # moves the C stack the unix port's GC scans conservatively: a 64K day's outcome changed with it
    env = {"MICROPYPATH": ":.frozen"}
    out = subprocess.run(
        [
            str(MICROPYTHON),
            "-X",
            f"heapsize={heapsize}",
            "-m",
            "sim_day",
            str(hours),
            str(interval),
            str(dr),
            str(loss),
            region,
            activation,
        ],
        cwd=cwd,
        env=env,
        # a board's stdin (its UART REPL) is always there; with fd 0 closed, as under pytest-xdist's
        # workers, the unix port's heap differs (the same day ran out of 64K only there)
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MemoryError" not in out.stderr
    lines = out.stdout.splitlines()
    tx = [(int(a), int(b)) for _, a, b in (line.split() for line in lines if line.startswith("tx "))]
    return tx, json.loads(lines[-1])


def max_hour_airtime(tx: list[tuple[int, int]]) -> int:
    """The most airtime in any one-hour window (windows starting at each transmission)."""
    worst = 0
    j = 0
    total = 0
    for i, (start, _) in enumerate(tx):
        while j < len(tx) and tx[j][0] < start + HOUR_MS:
            total += tx[j][1]
            j += 1
        worst = max(worst, total)
        total -= tx[i][1]
    return worst


@pytest.mark.parametrize("dr, toa_min", [(0, 1600), (5, 60)])
def test_day_with_ten_percent_loss_drops_nothing_and_keeps_the_duty_cycle_in_64k(
    bundle, tmp_path, dr, toa_min
):
    """Issue 13: at SF7, 1-min interval, 10 % loss the node used to drop 100 readings (its
    duty log held 64 transmissions an hour); at SF12 a 1-min interval cannot fit 1 % at all.
    Now: nothing dropped, nothing lost, the budget never exceeded in any hour; at SF12 the
    node spaces its readings out (reported) so the journal drains."""
    tx, summary = run_day(bundle, tmp_path, dr=dr, loss=0.1)
    assert summary["virtual_ms"] >= 24 * HOUR_MS
    assert all(toa >= toa_min for _, toa in tx)
    assert max_hour_airtime(tx) <= 0.01 * HOUR_MS
    assert summary["sent"] == len(tx)
    assert summary["dropped"] == 0 and summary["lost"] == 0
    assert summary["journal"] < 128 // 4  # drained, not piling up
    if dr == 0:
        # a 29-byte frame at SF12 is 1.65 s on air: 1 % carries one every ~247 s with room for resends
        assert summary["interval_s"] >= 240 and summary["backoff_events"] >= 1
        assert 200 < summary["taken"] < 24 * 60
    else:
        assert summary["taken"] == 24 * 60 and summary["interval_s"] == 60  # SF7: no need to back off
    # the frame counter was written in blocks, not per frame
    assert summary["fcnt_writes"] < summary["taken"] / 10
    assert summary["heap_peak_live"] < summary["heap_total"]
    print(
        f"sim day DR{dr}: taken={summary['taken']} sent={summary['sent']} deferred={summary['deferred']} "
        f"interval={summary['interval_s']} s airtime={summary['airtime_ms']} ms "
        f"heap peak live={summary['heap_peak_live']} of {summary['heap_total']} bytes"
    )


@pytest.mark.parametrize("dr", [0, 5])
def test_day_in_64k_has_4k_to_spare(bundle, tmp_path, dr):
    """The 64K day with room to spare: the same day runs in 60K. It used to need all but ~3K of
    the 64K (peak live 61.0K) and failed at 62K (a MemoryError from fragmentation), so any
    unrelated change could flip it."""
    tx, summary = run_day(bundle, tmp_path, dr=dr, loss=0.1, heapsize="60K")
    assert summary["virtual_ms"] >= 24 * HOUR_MS
    assert summary["dropped"] == 0 and summary["lost"] == 0
    assert summary["sent"] == len(tx) > 24 * 60 * 60_000 // 247_000  # the whole day's frames
    assert summary["heap_peak_live"] <= 60 * 1024  # at its fullest: 4K of a 64K board's heap free


def test_fast_data_rate_needs_no_deferral(bundle, tmp_path):
    # the same day at SF7: 66 ms per frame, well inside 1 %: nothing waits
    tx, summary = run_day(bundle, tmp_path, hours=6, dr=5, loss=0.0)
    assert summary["deferred"] == 0
    assert summary["taken"] == 6 * 60
    assert max_hour_airtime(tx) <= 0.01 * HOUR_MS


DAY_MS = 24 * HOUR_MS
# The LoRaWAN node's day in the harness needs more than the v1 node's 64K on this 64-bit port (see the
# issue-14 figures); the Sigfox-class law is what this day checks
SIGFOX_HEAP = "96K"


def most_in_a_day(tx: list[tuple[int, int]]) -> int:
    """The most transmissions starting in any 24-hour window (windows starting at each one)."""
    starts = [t for t, _ in tx]
    return max(sum(1 for t in starts[i:] if t < s + DAY_MS) for i, s in enumerate(starts))


def test_sigfox_class_day_keeps_140_uplinks_and_12_bytes_and_drops_nothing(bundle, tmp_path):
    """Issue 13 item 4: a Sigfox-class profile (12-byte payload, 140 uplinks a day) is enforced as the
    duty cycle is. A node asked for a reading every 10 minutes over 48 h with 10 % loss each way: no
    24-hour window holds more than 140 uplinks (resends and statuses included), every frame carries at
    most 12 bytes of payload, the node spaces its readings out (reported) and loses nothing. A LoRaWAN
    (ABP) node: a v1 frame's 18 bytes around 11 do not fit the 25 the profile carries."""
    tx, summary = run_day(
        bundle, tmp_path, hours=48, interval=600, dr=0, loss=0.1, region="sigfox", activation="abp", heapsize=SIGFOX_HEAP
    )
    assert summary["virtual_ms"] >= 48 * HOUR_MS
    assert most_in_a_day(tx) <= 140
    assert summary["sent"] == len(tx) and len(tx) > 200  # two days' worth, the budget used
    # 13 bytes of LoRaWAN frame around at most 12 of payload, at SF12 (the profile's one data rate)
    assert max(toa for _, toa in tx) <= 1_500
    assert summary["dropped"] == 0 and summary["lost"] == 0
    assert summary["journal"] < 128 // 4  # drained, not piling up
    # 140 a day, less resends (x1.25) and the harness's hourly statuses (24 a day), leave 88 readings:
    # one every 16.4 min instead of the 10 asked for, reported in the status's "i"
    assert summary["interval_s"] == 86_400 // 88 and summary["backoff_events"] >= 1
    assert 2 * 80 < summary["taken"] <= 2 * 88 + 1  # and one at the start
    print(f"sigfox-class 48 h: taken={summary['taken']} sent={summary['sent']} interval={summary['interval_s']} s "
          f"most in 24 h={most_in_a_day(tx)} heap peak live={summary['heap_peak_live']}")
