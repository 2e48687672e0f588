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
    # Sigfox-class: 12 bytes of payload in a LoRaWAN frame (13 bytes around them), SF12, 1 %
    assert r["sigfox"] == [0.01, 12, 125, 25]
    assert "out of range 0..5" in r["bad_dr"]
    # the 22nd SF12 frame waits until the first has left the one-hour window
    starts = r["starts"]
    assert starts[20] - starts[0] < 3_600_000
    assert starts[21] - starts[0] >= 3_600_000
    assert r["too_big"] == -1  # a frame longer than the whole budget can never go
    # bounded memory without a cap on the number of transmissions an hour
    assert r["many_waits"] == 0 and r["many_used"] == 240 * 66
    # Sigfox-class, asked for an uplink every minute for 48 h: never more than 140 in any 24 h
    # (windows starting at each uplink), and the budget is used, not left idle: 140 go at once,
    # the next as the hour that held them leaves the 25 hours counted
    day = r["day_starts"]
    assert r["day_cap"] == 140 and r["no_day"]
    assert max(sum(1 for t in day[i:] if t < s + 24 * 3_600_000) for i, s in enumerate(day)) == 140
    assert day[139] < 3 * 3_600_000 and day[140] >= 24 * 3_600_000
    assert day[140] <= 25 * 3_600_000
    assert len(day) >= 2 * 140


def test_receive_windows_of_each_region(micropython):
    """Class A windows (fp/lorawan/phy.py window, rx_timing) against RP002-1.0.3's tables."""
    out = run_mp("check_rxwin.py")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    # the SF and bandwidth window() works out for itself are the regional table's, at every data rate
    assert len(r["table"]) == 6 + 4 + 6 + 1
    assert [t for t in r["table"] if t[2] != t[3]] == []
    # EU868: RX1 on the uplink's channel at DR - RX1DROffset (floor DR0); RX2 869.525 MHz, DR0 = SF12
    # by default, the join accept's RX2DataRate otherwise (DR3 = SF9)
    assert r["eu868"] == [
        [868100, 7, 125],
        [868100, 9, 125],
        [868100, 12, 125],
        [869525, 12, 125],
        [869525, 9, 125],
    ]
    # US915: RX1 on 923.3 + 0.6 x (channel mod 8) MHz at DR10 + DR (DR4: DR13) - offset, 500 kHz;
    # RX2 923.3 MHz DR8 (SF12 BW500)
    assert r["us915"] == [[923900, 10, 500], [923900, 7, 500], [923900, 12, 500], [923300, 12, 500]]
    # AS923: RX1 DR - offset (6, 7: DR + 1, + 2) within DR0..5; RX2 923.2 MHz DR2 (SF10)
    assert r["as923"] == [[923200, 7, 125], [923200, 7, 125], [923200, 12, 125], [923200, 10, 125]]
    # RECEIVE_DELAY1 and RX2 one second later, a window open 10 ms before each; a join's 5 and 6 s;
    # a clock scaled 1000x gives the edge at least 30 real ms before each window, 10 real ms of margin
    assert r["timing"] == [
        [1000, 2000, 10],
        [5000, 6000, 10],
        [3000, 4000, 10],
        [1000, 2000, 200],
        [30000, 60000, 10000],
    ]
    assert r["errors"] == [
        "no LoRaWAN receive window in KR920 DR0",
        "no LoRaWAN receive window in US915 DR14",
    ]


def test_a_deep_sleep_keeps_the_uplinks_of_the_day(micropython):
    """A Sigfox-class node that deep-sleeps takes its last 25 hours of uplinks back from RTC memory
    (fp/resume.py): 139 before the sleep leave it one more, then none until an hour leaves the count."""
    out = run_mp("check_resume_day.py")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["used"] == 139 and r["wait_one"] == 0
    assert r["wait_two"] > 0
    assert r["other"] is None
