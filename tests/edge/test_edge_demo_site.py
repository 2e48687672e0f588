"""`python -m edge.demo` (the site, its default): real firmware nodes -> bridge -> edge daemon -> SQLite,
readings live. Panel and cloud are left out here: tests/link/test_demo.py covers the whole demo."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.firmware

ROOT = Path(__file__).resolve().parents[2]


def test_site_demo_shows_stored_readings_and_cleans_up(tmp_path):
    db = tmp_path / "demo.db"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge.demo",
            "--no-panel",
            "--no-cloud",
            "--modules",
            "3",
            "--duration",
            "5",
            "--db",
            str(db),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    nodes = {f"de700000000000a{n}" for n in (1, 2, 3)}
    shown = re.findall(
        r"^\[(\w{16})\] #(\d+) +reading +temperature (-?[\d.]+) °C  humidity ([\d.]+) %  battery "
        r"([\d.]+) V",
        out,
        re.M,
    )
    assert {dev for dev, *_ in shown} == nodes
    stored = int(re.search(r"stopping: (\d+) readings stored", out).group(1))
    conn = sqlite3.connect(db)
    for dev, fcnt, *_ in shown:  # every line shown is a committed reading
        assert conn.execute(
            "SELECT 1 FROM reading_list WHERE device_id = ? AND fcnt = ?", (dev, int(fcnt))
        ).fetchone()
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] >= stored > 0
    conn.close()
    for pid in map(int, re.findall(r"micropython pid (\d+)", out)):
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split()[2] == "Z"
