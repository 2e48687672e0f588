"""LoRa time on air, regional payload limits and the duty-cycle budget, under micropython."""

from __future__ import annotations

import json

import pytest

from tests.firmware.conftest import run_mp

pytestmark = pytest.mark.firmware


def test_airtime_regions_and_budget(micropython):
    out = run_mp("check_airtime.py")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    # Semtech AN1200.13 formula; the first two are the figures LoRa calculators give
    # (SF7 13 B 46.3 ms; SF12 51 B 2465.8 ms); SF12 29 B is the standard reading's frame
    assert r["toa"][:3] == [46336, 2465792, 1646592]
    assert 100000 < r["toa"][3] < 200000 and r["toa"][4] < r["toa"][0] * 2
    # EU868: DR0..2 carry 51 bytes, DR3 115, DR4..5 222; 1 % duty cycle
    assert [p[3] for p in r["eu868"]] == [51, 51, 51, 115, 222, 222]
    assert [p[1] for p in r["eu868"]] == [12, 11, 10, 9, 8, 7]
    assert all(p[0] == 0.01 for p in r["eu868"])
    assert r["us915_dr0"][3] == 11 and r["us915_dr0"][0] is None
    assert r["sigfox"][3] == 12
    assert "out of range 0..5" in r["bad_dr"]
    # the 22nd SF12 frame waits until the first has left the one-hour window
    starts = r["starts"]
    assert starts[20] - starts[0] < 3_600_000
    assert starts[21] - starts[0] >= 3_600_000
    assert r["too_big"] == -1  # a frame longer than the whole budget can never go
    # bounded memory without a cap on the number of transmissions an hour
    assert r["many_waits"] == 0 and r["many_used"] == 240 * 66
