"""The watchdog supervisor (fp/supervisor.py) under micropython's own asyncio."""

from __future__ import annotations

import pytest

from tests.firmware.conftest import run_mp

pytestmark = pytest.mark.firmware


def test_crash_and_stall_stop_the_watchdog_and_are_logged(micropython):
    out = run_mp("check_supervisor.py")
    assert out.returncode == 0, out.stderr
    crash, stall = out.stdout.splitlines()
    # a crashing task: the watchdog was fed before, the reason carries the traceback, one LOG line
    assert crash == "crash True True True 1"
    # a task that stops beating is caught too, and logged as an error
    assert stall == "stall True True error"
