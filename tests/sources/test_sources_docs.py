"""The device-side examples of docs/sources.md, run as written against a real UDP listener."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edge import registry
from edge.sources.config import DatagramConfig
from edge.sources.counters import Counters
from edge.sources.udp import UdpListener
from edge.store import connect

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"
DEV = "c0a8000000000042"


def example(name: str, port: int) -> str:
    """The example as written, on the test listener's port instead of the default 4750."""
    text = (REPO / "docs" / "sources.md").read_text()
    match = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)```", text, re.S)
    assert match, f"docs/sources.md has no {name} example"
    assert "4750" in match.group(1)
    return match.group(1).replace("4750", str(port))


@pytest.fixture
def listener(store):
    path, conn, ingest = store
    key = registry.add_device(conn, DEV, codec="json", actor="test", now=time.time())
    udp = UdpListener(
        DatagramConfig(enabled=True, host="127.0.0.1", port=0), ingest, counters=Counters()
    ).start()
    yield path, key, udp.address[1]
    udp.stop()


def _stored(path) -> list[tuple]:
    conn = connect(path)
    try:
        return [
            tuple(r) for r in conn.execute("SELECT fcnt, raw FROM reading_list WHERE device_id = ?", (DEV,))
        ]
    finally:
        conn.close()


def test_the_micropython_example_sends_a_reading(listener, tmp_path):
    if not MICROPYTHON.exists():
        pytest.skip("no micropython unix port in .venv (make venv)")
    path, key, port = listener
    script = tmp_path / "device.py"
    script.write_text(
        example("micropython", port)
        + f"\nprint(send('127.0.0.1', {key!r}, {bytes.fromhex(DEV)!r}, 1, b'{{\"temperature\": 21.5}}'))"
        + f"\nprint(send('127.0.0.1', {key!r}, {bytes.fromhex(DEV)!r}, 1, b'{{\"temperature\": 21.5}}'))\n"
    )
    out = subprocess.run(
        [str(MICROPYTHON), "-X", "heapsize=64K", str(script)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1"]  # stored, then the same frame again: a duplicate
    assert _stored(path) == [(1, b'{"temperature": 21.5}')]


def test_the_shell_example_sends_a_reading(listener, tmp_path):
    for tool in ("xxd", "openssl", "sh"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    path, key, port = listener
    env = {"PATH": "/usr/bin:/bin", "DEV": DEV, "KEY": key.hex(), "EDGE": "127.0.0.1"}
    for _ in range(2):
        out = subprocess.run(
            ["sh", "-c", example("shell", port)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "0"
    assert _stored(path) == [(1, b'{"temperature":21.5}'), (2, b'{"temperature":21.5}')]
