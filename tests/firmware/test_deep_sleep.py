"""Deep sleep on an ESP32 board (issue 13), under `micropython`: the real fp.app.main and the MCU
HAL on the heltec_v3 profile with stand-in hardware (tests/firmware/mp/check_deepsleep.py). The
node deep-sleeps until its next deadline; what must survive (clock, schedule, frame counter
position, duty budget) goes to RTC memory right before, and is taken back only on a deep-sleep
wake, whole and CRC-checked."""

from __future__ import annotations

import re

import pytest

from tests.firmware.conftest import REPO, run_mp

pytestmark = pytest.mark.firmware


def test_deep_sleep_keeps_schedule_and_counter_and_trusts_only_a_good_record(micropython, tmp_path):
    out = run_mp("check_deepsleep.py", str(REPO / "hardware" / "boards" / "heltec_v3.json"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    boots = [
        dict(re.findall(r"(\w+)=(\S+)", line)) for line in out.stdout.splitlines() if line.startswith("boot ")
    ]
    fcnt_at_boot = [int(x) for x in re.findall(r"fcnt=(\d+)", out.stdout.replace("slept", ""))]
    first, woken, crashed, damaged = boots
    # first boot: a reading and a status journaled, nobody answers: deep sleep until the retry (8 s x jitter)
    assert first["why"] == "reboot" and first["taken"] == "1" and first["pending"] == "[0,"
    assert 4 <= int(first["slept"]) <= 12 and int(first["rtc"]) > 0
    # woken: no new reading (the next is 15 min away), the retry backoff went on (doubled), and the
    # frame counter resumed inside the block reserved on flash before the sleep (no block skipped)
    assert woken["taken"] == "0" and int(woken["slept"]) > int(first["slept"])
    assert fcnt_at_boot[1] == 2
    # a reset that is not a deep-sleep wake (watchdog) does not trust RTC memory: counter from flash
    # (a block further on), a reading at once
    assert fcnt_at_boot[2] >= 32 and crashed["taken"] == "1"
    # a deep-sleep wake with a damaged record: refused by its CRC, the same as after a power cut
    assert fcnt_at_boot[3] > fcnt_at_boot[2] + 1 and damaged["taken"] == "1"
