"""Firmware benchmarks (issue 3): hot paths under the real `micropython`, against the
same work on CPython measured in the same run, and the simulated day's speed and heap.

Writes <out>/firmware.json. Not timed assertions: figures for `make bench`."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from tests.firmware.conftest import MICROPYTHON, MP_SCRIPTS, compile_scripts, mp_env

DEV = bytes.fromhex("0123456789abcdef")
KEY = bytes(range(1, 17))


MIN_SECONDS = 5.0  # each side of a comparison measured at least this long


def _timed(op, make=lambda i: None) -> tuple[float, int]:
    """(µs per call, calls) of ``op(arg, i)`` in chunks until >= MIN_SECONDS (``make`` untimed)."""
    spent, done = 0.0, 0
    while spent < MIN_SECONDS:
        args = [make(done + k) for k in range(200)]
        t0 = time.perf_counter()
        for k in range(200):
            op(args[k], done + k)
        spent += time.perf_counter() - t0
        done += 200
    return spent / done * 1e6, done


def _cpython_build_uplink_us() -> float:
    def build(_arg, i: int) -> None:
        payload = struct.pack(">BBhBBBBBh", 1, 0x67, 215, 2, 0x68, 97, 3, 0x02, 371)
        signed = struct.pack(">B8sIB", 0x40, DEV, i, 1) + payload
        _ = signed + hmac.new(KEY, signed, hashlib.sha256).digest()[:4]

    return _timed(build)[0]


def _cpython_append_us(path: Path) -> float:
    """A plain append of a record of the journal's size, fsync'd each time: the durability of the
    firmware journal's flush on the unix port."""
    with open(path, "ab", buffering=0) as f:

        def append(record: bytes, _i: int) -> None:
            f.write(record)
            os.fsync(f.fileno())

        return _timed(append, lambda i: struct.pack(">BBB", 0xA5, 1, 22) + bytes(22) + struct.pack(">I", i))[
            0
        ]


def _sim_day(hours: int) -> dict:
    from edge.tools.build_firmware import build_bundle

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_bundle(root / "unix", None)
        compile_scripts(root, ("sim_day",))
        work = root / "work"
        work.mkdir()
        env = dict(os.environ, MICROPYPATH=f"{root / 'unix'}:{root}:.frozen")
        t0 = time.perf_counter()
        out = subprocess.run(
            [str(MICROPYTHON), "-X", "heapsize=64K", "-m", "sim_day", str(hours), "60", "0", "0.1"],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,  # open, as a board's (fd 0 closed changes the unix port's heap)
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        wall = time.perf_counter() - t0
    summary = json.loads(out.stdout.splitlines()[-1])
    return {"hours": hours, "wall_s": wall, "speedup": hours * 3600 / wall, **summary}


def _main_days(hours: int) -> dict:
    """Issue 13: main.py of each role through a simulated day in the smallest heap it runs in
    (tests/firmware/mainday.py): its live heap at boot and at its peak, the harness's share, and
    the bytes allocated per radio cycle (GC off for an hour, in a large heap; the test stand-ins'
    own allocations included, so an upper bound)."""
    from tests.firmware import mainday

    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = mainday.build(Path(tmp) / "unix")
        for role in ("node", "bridge"):
            heap_k = mainday.heap_k(role)
            day, boots, lines = mainday.run(bundle, Path(tmp) / "day", role, heap_k, hours, timeout=300)
            if day is None:
                raise RuntimeError(f"main.py {role} day failed: " + "\n".join(lines[-20:]))
            garbage, _, _ = mainday.run(
                bundle, Path(tmp) / "garbage", role, 8192, 1, garbage=True, timeout=300
            )
            figures[role] = {
                "heapsize_k": heap_k,
                "micropython_word_bits": mainday.word_bits(mainday.MICROPYTHON),
                "hours": hours,
                "boots": len(boots),
                "memory_errors": sum("MemoryError" in line for line in lines),
                "live_at_boot": day["boot_live"],
                "peak_live": day["peak_live"],
                "peak_allocated": day["peak_alloc"],
                "harness": day["harness"],
                "garbage_per_cycle_bytes": garbage["garbage_per_cycle"] if garbage else None,
            }
    return figures


BOARDS = ("heltec_v2", "heltec_v3", "pico_rfm95w")
VOLTS = 3.7  # nominal Li-ion cell voltage: charge -> energy


def _power_day(board: str, interval: int, sleep: bool, hours: int, garbage: bool = False) -> dict:
    from tests.firmware.conftest import REPO

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(MICROPYTHON),
            "-X",
            "heapsize=8M" if garbage else "heapsize=256K",
            str(MP_SCRIPTS / "power_day.py"),
        ]
        cmd += [str(REPO / "hardware" / "boards" / f"{board}.json"), str(hours), str(interval), "3"]
        cmd += ["1" if sleep else "0", "1" if garbage else "0"]
        out = subprocess.run(
            cmd, cwd=tmp, env=mp_env(), capture_output=True, text=True, timeout=300, check=True
        )
    return json.loads(out.stdout.splitlines()[-1])


def _power(quick: bool) -> dict:
    """Issue 13: energy per reading and projected battery life per board profile at 1, 5 and 15 min
    (SF9, the power model's datasheet currents), next to the same node kept awake (the baseline:
    the firmware before sleep), measured in the same run."""
    hours = 6 if quick else 24
    figures: dict = {}
    for board in BOARDS:
        per: dict = {}
        for minutes in (1, 5, 15):
            asleep = _power_day(board, minutes * 60, True, hours)
            awake = _power_day(board, minutes * 60, False, hours)
            readings_day = asleep["taken"] * 24 / hours
            cap = asleep["status"]["c"]
            per[f"{minutes}min"] = {
                "mah_day": round(asleep["mah_day"], 3),
                "energy_per_reading_mj": round(asleep["mah_day"] * 3.6 * VOLTS * 1000 / readings_day, 1),
                "battery_days": round(cap / asleep["mah_day"], 1),
                "awake_baseline_mah_day": round(awake["mah_day"], 1),
                "awake_baseline_battery_days": round(cap / awake["mah_day"], 2),
                "interval_s_used": asleep["status"].get("i", minutes * 60),
            }
        figures[board] = per
    figures["garbage_per_cycle_bytes"] = _power_day("heltec_v3", 900, True, 6, garbage=True)[
        "garbage_per_cycle"
    ]
    return figures


def run(out_dir: Path, quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        mp = subprocess.run(
            [str(MICROPYTHON), str(MP_SCRIPTS / "bench_ops.py"), str(MIN_SECONDS)],
            cwd=tmp,
            env=mp_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        micro = json.loads(mp.stdout.splitlines()[-1])
        cpy_build = _cpython_build_uplink_us()
        cpy_append = _cpython_append_us(Path(tmp) / "baseline.j")
    figures = {
        "micropython_us": micro,
        "cpython_baseline_us": {"build_uplink_us": cpy_build, "raw_file_append_us": cpy_append},
        "ratio_micropython_over_cpython": {
            "build_uplink": micro["build_uplink_us"] / cpy_build,
            "journal_append": micro["journal_append_us"] / cpy_append,
        },
        "sim_day_64k": _sim_day(6 if quick else 24),
        "main_py_day": _main_days(6 if quick else 24),
        "power": _power(quick),
    }
    day = figures["sim_day_64k"]
    # SF12, 1-min interval asked, 10 % loss: airtime used against the 1 % budget of the simulated time
    budget_ms = 0.01 * day["hours"] * 3_600_000
    figures["airtime_vs_budget"] = {
        "used_ms": day["airtime_ms"],
        "budget_ms": budget_ms,
        "share": day["airtime_ms"] / budget_ms,
        "dropped": day["dropped"],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "firmware.json").write_text(json.dumps(figures, indent=1) + "\n")
    return figures


if __name__ == "__main__":
    print(json.dumps(run(Path("build/bench"), quick=True), indent=1))
