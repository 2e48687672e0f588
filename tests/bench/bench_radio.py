"""Radio benchmarks (issue 15): what the vendored driver costs, each figure next to a baseline measured
in the same run.

- bundle size per board: the mpy-cross bundle with micropython-lib's lora driver for its chip, against
  the same bundle without the driver (what a board got before, when mip fetched the driver);
- the driver's RAM on the unix port under the board's heap size: gc.mem_alloc after importing and
  constructing the driver on its emulated chip, against the firmware's radio HAL imported alone;
- emulated-chip overhead per packet on the unix port: round trips between two modems in one
  `micropython` (the real driver over emulated SX1276 / SX1262, as a virtual module of the board
  gets them), against the old loopback air modem (board unix_air): wall time and CPU time per
  packet, and SPI transactions per packet, at time scale 1 and 50. Most of the difference is the
  driver's asyncio ThreadSafeFlag, which MicroPython's unix port polls in ~1 ms slices; the host
  time of the driver's SPI traffic and the chips alone is measured without asyncio too.

Writes <out>/radio.json. Figures, not assertions."""

from __future__ import annotations

import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from edge.tools import build_firmware
from tests.firmware.conftest import MICROPYTHON, MP_SCRIPTS, REPO, mp_env
from tests.firmware.modules import free_udp_ports

BOARDS = REPO / "hardware" / "boards"
CHIP_BOARDS = ("heltec_v2", "heltec_v3")


def _bundle_sizes(root: Path) -> dict:
    out = {}
    for board in ("heltec_v2", "heltec_v3", "pico_rfm95w", "unix"):
        profile = json.loads((BOARDS / f"{board}.json").read_text())
        manifest = build_firmware.build_bundle(root / board, profile.get("arch"), profile=profile)
        sizes = {path: (root / board / path).stat().st_size for path in manifest["files"]}
        driver = sum(n for path, n in sizes.items() if path.startswith("lib/lora/"))
        total = sum(sizes.values())
        out[board] = {
            "arch": profile.get("arch") or "bytecode",
            "bundle_bytes": total,
            "baseline_without_driver_bytes": total - driver,
            "driver_bytes": driver,
            "driver_files": sorted(p for p in sizes if p.startswith("lib/lora/")),
            "driver_share": round(driver / total, 3),
        }
    return out


def _driver_heap(bundle_root: Path) -> dict:
    out = {}
    script = MP_SCRIPTS / "radio_heap.py"
    every = bundle_root / "bytecode"
    build_firmware.build_bundle(every, None)  # compiled, both chip drivers and the emulator
    for board in CHIP_BOARDS:
        profile = json.loads((BOARDS / f"{board}.json").read_text())
        (port,) = free_udp_ports(1)
        env = mp_env()
        env["MICROPYPATH"] = f"{every}:{every / 'lib'}:.frozen"
        proc = subprocess.run(
            [
                str(MICROPYTHON),
                "-X",
                f"heapsize={profile['heap_kb']}K",
                str(script),
                str(BOARDS / f"{board}.json"),
                str(port),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        figures = json.loads(proc.stdout.splitlines()[-1])
        out[board] = {"heap_kb": profile["heap_kb"], **figures}
    return out


MIN_SECONDS = 5.0  # each side of a comparison runs at least this long


def _pingpong(board: str, n: int, scale: float) -> dict:
    """Round trips between two virtual modules of ``board``; at least ``n``, and as many more as
    make the run last >= MIN_SECONDS (a short first run is done again, longer)."""
    row = _pingpong_once(board, n, scale)
    while row["process_wall_s"] < MIN_SECONDS:  # the process's start is part of its wall time: grow until
        n = max(n + 1, int(n * 1.5 * MIN_SECONDS / row["process_wall_s"]))
        row = _pingpong_once(board, n, scale)
    return row


def _pingpong_once(board: str, n: int, scale: float) -> dict:
    pa, pb = free_udp_ports(2)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            str(MICROPYTHON),
            str(MP_SCRIPTS / "radio_pingpong.py"),
            board,
            str(n),
            str(scale),
            str(pa),
            str(pb),
            str(BOARDS),
        ],
        env=mp_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = json.loads(proc.stdout.splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    packets = 2 * n
    return {
        "round_trips": n,
        "lost": figures["lost"],
        "wall_us_per_packet": figures["us_per_round_trip"] / 2,
        "time_on_air_us_per_packet": figures["toa_us_per_round_trip"] / 2 / scale,
        "cpu_us_per_packet": cpu / packets * 1e6,
        "process_wall_s": wall,
        "spi_transactions_per_packet": figures["spi_per_packet"],
    }


def _host_time(n: int) -> dict:
    """Host time per packet of the driver and the emulated chips alone (no asyncio), SX1276 and SX1262."""
    out = {}
    for board in CHIP_BOARDS:
        packets = n
        while True:  # as many packets as take >= MIN_SECONDS of host time
            figures = _sync_pingpong(board, packets)
            if figures["host_us_per_packet"] * packets / 1e6 >= MIN_SECONDS:
                break
            packets = (
                int(packets * 1.2 * MIN_SECONDS * 1e6 / max(figures["host_us_per_packet"] * packets, 1.0)) + 1
            )
        out[board] = {
            "us_per_packet": figures["host_us_per_packet"],
            "spi_transactions_per_packet": figures["spi_per_packet"],
            "received": figures["ok"],
            "packets": packets,
        }
    return out


def _sync_pingpong(board: str, n: int) -> dict:
    pa, pb = free_udp_ports(2)
    proc = subprocess.run(
        [
            str(MICROPYTHON),
            str(MP_SCRIPTS / "radio_pingpong.py"),
            board,
            str(n),
            "100000",
            str(pa),
            str(pb),
            str(BOARDS),
            "sync",
        ],
        env=mp_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(proc.stdout.splitlines()[-1])


def _overhead(n: int) -> dict:
    out = {}
    for scale in (1, 50):
        rows = {"unix_air (baseline)": _pingpong("unix_air", n, scale)}
        base = rows["unix_air (baseline)"]
        for board in CHIP_BOARDS:
            row = _pingpong(board, n, scale)
            row["wall_overhead_us_per_packet"] = row["wall_us_per_packet"] - base["wall_us_per_packet"]
            row["cpu_ratio_to_baseline"] = round(
                row["cpu_us_per_packet"] / max(base["cpu_us_per_packet"], 1e-9), 2
            )
            rows[board] = row
        out[f"scale_{scale}"] = rows
    return out


def run(out_dir: Path, quick: bool) -> dict:
    n = 30 if quick else 300
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sizes = _bundle_sizes(root)
        heap = _driver_heap(root)
    figures = {
        "bundles": sizes,
        "driver_heap_bytes": heap,
        "emulated_chip_per_packet": _overhead(n),
        # the SPI work alone: compare with the baseline's cpu_us_per_packet above
        "driver_and_chip_host_us_per_packet": _host_time(10 * n),
    }
    (out_dir / "radio.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures
