"""Firmware update of a bridge over its serial link (edge.fuota.serial), against copying the same
files with mpremote, which is what a user would otherwise do (stop the daemon, copy over the USB
serial REPL, restart).

Figures (``update.json``), each side repeated for at least ``MIN_SECONDS``, in the same run, on the
same bundles (the virtual board, mpy-cross compiled):
- ``serial.full`` / ``serial.delta``: from queueing the update with the running daemon to the
  update marked done, per update (``median_s``): the daemon noticing the queued update (it reads
  them every 2 s), the package over the link (offer, chunks in the link's window, commit), staging
  with every hash checked, the reboot, the power-safe swap, the new HELLO; ``transfer_median_s``:
  from the first answer to the offer to the package staged;
- ``baseline_mpremote.full_s`` / ``delta_s``: writing the same files (every file, or the ones the delta
  carries) through mpremote's raw REPL on a pty (provisioning.repl.ModuleRepl), no check, no swap, no
  reboot;
- ``package_bytes``: what the link carried for each, and the bytes of the files themselves.

Both sides use the same pty, which has no baud limit: on a real UART the file bytes dominate both,
and mpremote sends each byte as Python literal text (about 2-4 bytes on the wire per byte), the
package as compressed binary frames.

Run alone: ``python -m tests.bench.bench_update [--quick] [--out DIR]``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

from edge.daemon import Daemon
from edge.fuota import jobs, package
from edge.fuota.store import BundleStore
from edge.sim import VirtualModule
from edge.store import connect, migrate, transaction
from provisioning.repl import ModuleRepl
from tests.conftest import wait_until
from tests.firmware import updatekit
from tests.firmware.modules import BRIDGE_ID, bridge_config, free_udp_ports, module_dir
from tests.sitekit import register_modules, site_config

MIN_SECONDS = 5.0


def _serial_once(work: Path, bundles: dict[str, Path], *, full: bool) -> tuple[dict[str, float], int]:
    """One update of a fresh v1 bridge to v2 through the real daemon: ({"total", "transfer"} seconds,
    package bytes)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root = work / "flash"
    shutil.copytree(bundles["v1"], root)
    db_path = work / "fp.db"
    conn = connect(db_path)
    migrate(conn)
    register_modules(conn, now=time.time())
    node_port, bridge_port = free_udp_ports(2)
    bdir = module_dir(work, "bridge", **bridge_config(bridge_port, node_port))
    vm = VirtualModule(
        "main.py", ["config.json"], cwd=bdir, name="bridge", firmware_dir=root, precompile=False
    )
    vm.start()
    daemon = None
    try:
        daemon = Daemon(site_config(db_path, vm), attach_points=()).start()
        wait_until(lambda: daemon.manager.links_up() == 1, timeout=30, what="HELLO")
        store = BundleStore(work / "firmware")
        for name in ("v1", "v2"):
            store.keep(bundles[name])
        plan, data = store.package_for("unix", updatekit.V2, updatekit.V1, full=full)
        pkg = work / "update.fpup"
        pkg.write_bytes(data)
        import hashlib

        started = time.perf_counter()
        with transaction(conn):
            job_id = jobs.queue(
                conn,
                BRIDGE_ID,
                board="unix",
                version=updatekit.V2,
                from_version=updatekit.V1,
                package=str(pkg),
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                now=time.time(),
            )
        seen: dict[str, float] = {}  # state -> when it was first seen

        def state() -> str:
            now_state = jobs.get(conn, job_id).state
            seen.setdefault(now_state, time.perf_counter())
            return now_state

        wait_until(lambda: state() == "done", timeout=120, interval=0.005, what="update done")
        if updatekit.tree(root) != updatekit.tree(bundles["v2"]):
            raise RuntimeError("the bridge does not hold exactly v2 after its update")
        # from the first answer to the offer to the staged package: the transfer and the module's checks
        transfer = seen.get("staged", seen["done"]) - seen.get("sending", started)
        return {"total": seen["done"] - started, "transfer": transfer}, len(data)
    finally:
        if daemon is not None:
            daemon.stop()
        vm.close()
        conn.close()


def _mpremote_once(work: Path, bundles: dict[str, Path], files: list[str]) -> float:
    """Write ``files`` of v2 into a v1 module through mpremote's raw REPL on a pty: seconds."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copytree(bundles["v1"], work / "flash")
    vm = VirtualModule(None, cwd=work / "flash", name="repl")
    vm.start()
    try:
        with ModuleRepl(vm.port) as repl:
            started = time.perf_counter()
            made = set()
            for rel in files:
                folder = rel.rpartition("/")[0]
                if folder and folder not in made:
                    repl.makedirs(folder)
                    made.add(folder)
                repl.write(rel, (bundles["v2"] / rel).read_bytes())
            return time.perf_counter() - started
    finally:
        vm.close()


def _repeat(measure, minimum: float) -> dict:
    samples = []
    while sum(samples) < minimum:
        samples.append(measure())
    samples.sort()
    return {
        "runs": len(samples),
        "median_s": round(samples[len(samples) // 2], 3),
        "min_s": round(samples[0], 3),
    }


def run(out_dir: Path, quick: bool) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-update-") as tmp:
        work = Path(tmp)
        bundles = updatekit.build_bundles(work / "bundles")
        v1 = package.Manifest.from_dict(json.loads((bundles["v1"] / "manifest.json").read_text()))
        v2 = package.Manifest.from_dict(json.loads((bundles["v2"] / "manifest.json").read_text()))
        delta_files = list(package.plan(v2, v1).changed)
        sizes = {}

        transfers: dict[str, list[float]] = {"full": [], "delta": []}

        def serial(full: bool):
            def once():
                seconds, size = _serial_once(work / "serial", bundles, full=full)
                kind = "full" if full else "delta"
                sizes[kind] = size
                transfers[kind].append(seconds["transfer"])
                return seconds["total"]

            return once

        figures = {
            "quick": quick,
            "board": "unix (virtual, 921,600 baud pty)",
            "files": {"full": len(v2.files), "delta": len(delta_files)},
            "file_bytes": {"full": v2.total_size, "delta": sum(v2.sizes[p] for p in delta_files)},
            "serial": {
                "full": _repeat(serial(True), MIN_SECONDS),
                "delta": _repeat(serial(False), MIN_SECONDS),
            },
            "baseline_mpremote": {
                "full": _repeat(
                    lambda: _mpremote_once(work / "repl", bundles, sorted(v2.files)), MIN_SECONDS
                ),
                "delta": _repeat(lambda: _mpremote_once(work / "repl", bundles, delta_files), MIN_SECONDS),
            },
        }
        figures["package_bytes"] = sizes
        for kind, values in transfers.items():
            values.sort()
            figures["serial"][kind]["transfer_median_s"] = round(values[len(values) // 2], 3)
        for kind in ("full", "delta"):
            figures[f"serial_vs_mpremote_{kind}"] = round(
                figures["baseline_mpremote"][kind]["median_s"] / figures["serial"][kind]["median_s"], 2
            )
    (out_dir / "update.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures
