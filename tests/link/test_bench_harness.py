"""`python -m tests.bench` (what `make bench` runs), with the link benchmark in quick mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.firmware

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_quick_link_benchmark_writes_json_and_summary(tmp_path):
    proc = bench("--out", str(tmp_path), "--quick", "--only", "link")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads((tmp_path / "link.json").read_text())
    assert figures["quick"] is True
    for size in ("16", "64", "512"):
        codec = figures["codec"][size]
        assert codec["edge_frames_per_s"] > 0 and codec["firmware_on_micropython_frames_per_s"] > 0
        assert codec["edge_vs_firmware_ratio"] > 0
    assert figures["pty_linktest"]["16"]["frames"] == 300
    assert figures["pty_linktest"]["16"]["fraction_of_line_rate"] > 0
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert "## link — ok" in summary and "codec.16.edge_vs_firmware_ratio" in summary


def test_unknown_benchmark_is_refused(tmp_path):
    proc = bench("--out", str(tmp_path), "--only", "nosuch")
    assert proc.returncode == 2
    assert "no such benchmark: nosuch" in proc.stderr
