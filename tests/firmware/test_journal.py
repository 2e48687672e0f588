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
