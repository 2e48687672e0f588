"""The flash journal's rules, checked on the firmware's own Journal under `micropython`:
bounded with drop-oldest counted, resend order across reboots, compaction by atomic
rename, damaged records refused, frames kept unsigned (signed when sent), a format-1
journal (signed frames, firmware 0.1.0) migrated at boot, frames given up counted.
(Kill -9 at random points: test_journal_kill.py; key rotation end to end: test_key_rotation.py.)"""

from __future__ import annotations

import pytest

from tests.firmware.conftest import run_mp

pytestmark = pytest.mark.firmware


def test_journal_bounds_order_compaction_and_damage(micropython, tmp_path):
    out = run_mp("check_journal.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["OK"], out.stdout


def test_frame_counter_blocks_reboots_and_damage(micropython, tmp_path):
    out = run_mp("check_fcnt.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["OK"], out.stdout


def test_backlog_is_signed_when_sent_and_refusals_give_up_only_for_good(micropython, tmp_path):
    # Device.next_uplink signs each journaled frame with the key of the moment (a key rotated
    # mid-backlog applies to the backlog); fp/refusal.py gives a frame up after LIMIT refusals
    # in a row (bad MIC, replayed, malformed), never for an unknown device.
    out = run_mp("check_resign.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["OK"], out.stdout


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_bit_flips_lose_only_the_records_that_hold_them(micropython, tmp_path, seed):
    """Issue 13: one flipped bit used to lose every pending reading after it in its segment
    (43 in one run). Now replay resyncs on the next valid record: exactly the records that
    hold a flip are lost, each counted as bad, and every other record reads back intact."""
    out = run_mp("check_journal_flips.py", str(seed), "12", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.stdout.splitlines())
    assert got["lost"] == got["flipped"]
    assert len(got["flipped"].split()) == 12
    # each damaged record is counted; two hit in a row, the later in its header, count as one
    assert int(got["runs"]) <= int(got["bad"]) <= 12
    assert got["intact"] == "True"


def test_readings_keep_their_sample_time_and_go_out_with_their_age(micropython, tmp_path):
    # Issue 13 item 9: a fresh reading stays port-1 LPP; one that waited (2 h here) goes out on
    # port 8 with its age; the sample time survives a cold boot (the clock goes on above it)
    # and a compaction; a frame journaled without one goes out plain.
    out = run_mp("check_sample_age.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["OK"], out.stdout
