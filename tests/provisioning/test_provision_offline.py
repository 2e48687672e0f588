"""`fieldpost provision module` needs no internet, and is never half done.

Each run is its own process (tests/provisioning/provision_run.py) in a network namespace with no
route at all (``unshare -rn``: not even loopback is up), with an audit hook that records and
refuses any attempt to use the network. The module is a virtual one: MicroPython's REPL on a pty.

The run is SIGKILLed at each of its steps in turn, on one module; after each kill the module is
either as it was or clearly unprovisioned (the marker on its flash: its firmware will not run), and
the edge has registered nothing (or, killed after the registration, exactly what the module holds).
The last run finishes the job."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.store import connect
from provisioning.hello import wait_for_hello
from provisioning.module import MARKER

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _netns() -> list[str]:
    try:
        ok = subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return ["unshare", "-rn"] if ok else []


NETNS = _netns()


def run(
    tmp_path, module, db, cache, *, board="unix", role="bridge", kill=None, kill_exec=None, settings=None
):
    """One provisioning run; returns (exit signal or 0, result or None)."""
    log = tmp_path / "network.log"
    spec = {
        "port": module.port,
        "board": board,
        "role": role,
        "db": str(db),
        "cache": str(cache),
        "settings": settings or {},
        "kill": kill,
        "kill_exec": kill_exec,
        "network_log": str(log),
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [*NETNS, sys.executable, str(HERE / "provision_run.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert not log.exists() or log.read_text() == "", (
        f"provisioning reached for the network: {log.read_text()}"
    )
    if proc.returncode == -signal.SIGKILL:
        return "killed", None
    assert proc.returncode == 0, proc.stderr[-3000:]
    return "ok", json.loads(proc.stdout.splitlines()[-1])


def devices(db):
    conn = connect(db)
    try:
        return [dict(r) for r in conn.execute("SELECT id, key FROM devices")]
    finally:
        conn.close()


def flash_state(flash: Path) -> dict:
    files = sorted(str(p.relative_to(flash)) for p in flash.rglob("*") if p.is_file())
    config = json.loads((flash / "config.json").read_text()) if (flash / "config.json").exists() else None
    return {"files": files, "marker": (flash / MARKER).exists(), "config": config}


def test_the_network_namespace_has_no_route():
    if not NETNS:
        pytest.skip("unshare -rn is not available here: the audit hook alone guards the runs")
    probe = "import socket\ntry:\n socket.create_connection(('192.0.2.1', 80), timeout=2)\nexcept OSError as e:\n print(e.errno)"
    out = subprocess.run([*NETNS, sys.executable, "-c", probe], capture_output=True, text=True, timeout=20)
    assert out.stdout.strip() == "101"  # ENETUNREACH


# Kill points, in order, on one module: (stage, nth report of that stage), or ("exec", n) for the n-th
# command to the REPL (in the middle of copying a file's chunks).
KILLS = [
    ("connect", 1),
    ("compile", 1),
    ("mark", 1),
    ("copy", 1),
    ("copy", 6),
    ("exec", 14),
    ("verify", 1),
    ("config", 1),
    ("register", 1),
    ("release", 1),
]


def test_killed_at_each_step_then_finished(tmp_path, blank_module, edge_db, mpy_cache):
    flash = blank_module.flash
    untouched = flash_state(flash)
    for stage, nth in KILLS:
        if stage == "exec":
            outcome, _ = run(tmp_path, blank_module, edge_db, mpy_cache, kill_exec=nth)
        else:
            outcome, _ = run(tmp_path, blank_module, edge_db, mpy_cache, kill=[stage, nth])
        assert outcome == "killed", (stage, nth)
        state = flash_state(flash)
        rows = devices(edge_db)
        where = f"killed at {stage} #{nth}"
        if stage in ("connect", "compile", "mark"):
            assert state == untouched, where  # nothing written yet: as it was
        else:
            assert state["marker"], where  # clearly unprovisioned
        if stage == "release":
            # the registration is done and it is what the module holds; the module still waits
            [row] = rows
            assert state["config"]["id"] == row["id"] and state["config"]["key"] == bytes(row["key"]).hex(), (
                where
            )
        else:
            assert rows == [], where  # the edge registered nothing
        if stage in ("register", "release"):
            assert state["config"] is not None, where  # identity and key went on after every file verified
        else:
            assert state["config"] is None, where
        if stage == "register":
            # booted now, the module announces that it is not provisioned, and runs no role
            dev = state["config"]["id"]
            blank_module.reset()
            hello = wait_for_hello(blank_module.port, dev, timeout=15)
            assert "provisioning incomplete" in hello.get("safe", ""), hello
            blank_module.back_to_repl()

    outcome, result = run(tmp_path, blank_module, edge_db, mpy_cache)
    assert outcome == "ok" and result["resumed"], result
    state = flash_state(flash)
    [row] = devices(edge_db)
    assert not state["marker"] and not [f for f in state["files"] if f.endswith(".tmp")]
    assert state["config"]["id"] == row["id"] and state["config"]["key"] == bytes(row["key"]).hex()
    assert result["driver"] == sorted(
        f"lib/lora/{n}" for n in ("LICENSE", "__init__.mpy", "async_modem.mpy", "modem.mpy", "sx126x.mpy")
    )
    # and it runs: the bridge says HELLO with its identity, not in safe mode
    blank_module.reset()
    hello = wait_for_hello(blank_module.port, row["id"], timeout=15)
    assert "safe" not in hello and hello["board"] == "unix"
    blank_module.back_to_repl()
    again, result = run(tmp_path, blank_module, edge_db, mpy_cache)
    assert again == "ok" and result["copied"] == [] and result["registration"] == "unchanged"
    assert not result["resumed"] and "mark" not in result["stages"]  # nothing to change: not marked


def test_a_board_bundle_with_its_compiled_driver_offline(tmp_path, blank_module, edge_db, mpy_cache):
    """heltec_v2: the xtensawin bundle with micropython-lib's SX127x driver copied and verified, offline."""
    outcome, result = run(tmp_path, blank_module, edge_db, mpy_cache, board="heltec_v2", role="node")
    assert outcome == "ok", result
    flash = blank_module.flash
    manifest = next(mpy_cache.glob("heltec_v2-*/manifest.json"))
    hashes = json.loads(manifest.read_text())["files"]
    for name in ("__init__.mpy", "modem.mpy", "async_modem.mpy", "sx127x.mpy", "LICENSE"):
        data = (flash / "lib" / "lora" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hashes[f"lib/lora/{name}"]
    assert not (flash / "lib" / "lora" / "sx126x.mpy").exists()
    assert not (flash / "fp" / "hal" / "emu").exists() and not (flash / "fp" / "hal" / "unix.mpy").exists()
    assert not (flash / MARKER).exists()
    [row] = devices(edge_db)
    assert json.loads((flash / "config.json").read_text())["board"] == "heltec_v2"
    assert row["id"] == result["device_id"]
