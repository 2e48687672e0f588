"""`fieldpost provision module`: a blank (or outdated) module into a registered one, offline.

The firmware bundle carries everything the module runs, the radio driver included
(micropython-lib's lora, vendored in firmware/lib/lora/ and compiled for the board): nothing
is fetched from the internet. Only extra packages asked for with --package go through mip.

Order matters for "never half provisioned":
1. nothing is written before the port, the REPL, the board profile, the edge database and the
   compiled bundle are all there;
2. if any file on the module must change, the marker ``provisioning.json`` is written first:
   from then on the firmware refuses to run (safe mode, "provisioning incomplete" in its HELLO),
   so a module killed mid-way is clearly unprovisioned, whatever mix of files it holds;
3. the bundle's files are copied (each to ``<file>.tmp`` and renamed) and every one is read
   back (SHA-256) before anything else;
4. only then the identity and key: config.json, checked by the firmware's own loader under a
   scratch name, written the same way and read back;
5. the edge registers the device and key, in one transaction: the first and only edge write;
6. the marker is removed (and its absence checked): the module may run.
Killed before 2 the module is as it was; between 2 and 6 it is clearly unprovisioned and the
edge has registered nothing new (or, between 5 and 6, exactly what the module holds). A re-run
finishes the job: the identity is read back from the module's config.json, files whose hash
matches are skipped, and the device row is left alone when it already holds the same key and
settings.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge import registry
from edge.errors import ProvisioningError, ValidationError
from edge.radio import is_device_id
from edge.store import connect, transaction
from provisioning.boards import BOARDS_DIR, load_board
from provisioning.bundle import CONFIG_NAME, FIRMWARE_DIR, build_bundle, sha256_hex
from provisioning.hello import wait_for_hello
from provisioning.journal import JOURNAL_DIR, is_segment, pending_fcnts
from provisioning.repl import ModuleRepl

log = logging.getLogger("fieldpost.provisioning")

ROLES = registry.ROLES
# Extra packages (--package only: the radio driver is in the bundle) come from here, or --offline-packages.
MIP_INDEX = "https://micropython.org/pi/v2"
MIP_TARGET = "lib"  # relative to the module's cwd: /lib on a board, <module dir>/lib on the unix port
# On the module while provisioning is under way; the firmware will not run while it is there
# (firmware/fp/app.py reads the same name).
MARKER = "provisioning.json"

Progress = Callable[[str, str], None]  # (stage, detail)
Reset = Callable[[ModuleRepl], None]


@dataclass
class ModuleSpec:
    port: str
    board: str
    role: str
    device_id: str | None = None
    name: str = ""
    region: str | None = None
    dr: int | None = None
    interval: int | None = None
    rotate_key: bool = False
    packages: list[str] = field(default_factory=list)  # extra mip packages (the driver is in the bundle)
    offline_packages: Path | None = None  # a local mip index (micropython.org/pi/v2 layout)
    settings: dict[str, Any] = field(default_factory=dict)  # further config.json keys


@dataclass
class ProvisionResult:
    device_id: str
    board: str
    role: str
    copied: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)  # package -> "installed" / "up to date"
    registration: str = ""  # added, re-provisioned, key rotated, unchanged
    key_rotated: bool = False
    hello: dict | None = None
    uplink_at: float | None = None  # when the edge stored its first uplink (wait_uplink)
    # readings still journaled when the key was rotated (they are re-signed on send)
    journal_pending_at_rotation: int = 0
    resumed: bool = False  # the module held the marker of an unfinished run
    driver: list[str] = field(default_factory=list)  # the radio driver's files in the bundle

    @property
    def changed(self) -> bool:
        return (
            bool(self.copied)
            or self.resumed
            or self.registration != "unchanged"
            or any(v != "up to date" for v in self.packages.values())
        )


def check_spec(spec: ModuleSpec) -> None:
    if spec.role not in ROLES:
        raise ValidationError("role", f"{spec.role!r} is not one of {', '.join(ROLES)}")
    if spec.device_id is not None and not is_device_id(spec.device_id):
        raise ValidationError("id", f"{spec.device_id!r} is not 16 lower-case hex digits")
    if spec.interval is not None and not 10 <= spec.interval <= 86400:
        raise ValidationError("interval", f"{spec.interval} is outside 10 .. 86400 seconds")
    if spec.dr is not None and not 0 <= spec.dr <= 15:
        raise ValidationError("dr", f"{spec.dr} is outside 0 .. 15")
    if spec.offline_packages is not None and not Path(spec.offline_packages).is_dir():
        raise ValidationError("offline_packages", f"{spec.offline_packages} is not a directory")
    for key in ("id", "key", "role", "board"):
        if key in spec.settings:
            raise ValidationError(f"set.{key}", "is set by provisioning itself; use its own option")


def region_default(profile: dict[str, Any]) -> tuple[str, int | None]:
    region = profile.get("region", "EU868")
    if isinstance(region, dict):
        return region["name"], region.get("dr")
    return region, None


def module_config(
    spec: ModuleSpec, profile: dict[str, Any], old: dict[str, Any], device_id: str, key: bytes
) -> dict[str, Any]:
    """config.json for the module: what it had, updated with this run's choices (firmware/fp/config.py)."""
    region, dr = region_default(profile)
    cfg = dict(old)
    cfg.update(spec.settings)
    cfg.update({"id": device_id, "key": key.hex(), "role": spec.role, "board": profile["name"]})
    # LoRaWAN identity: DevEUI = id, AppKey = key, JoinEUI (default all zeros, as the edge's [lorawan]
    # join_eui). config_bytes sorts keys, so the AppKey ("key") comes after DevEUI and JoinEUI.
    cfg.setdefault("join_eui", "0000000000000000")
    cfg["region"] = spec.region or old.get("region") or region
    if spec.dr is not None:
        cfg["dr"] = spec.dr
    elif "dr" not in cfg and dr is not None:
        cfg["dr"] = dr
    if spec.interval is not None:
        cfg["interval"] = spec.interval
    return cfg


def config_bytes(cfg: dict[str, Any]) -> bytes:
    # Sorted and stable, so the same settings give the same bytes and the same hash on a re-run.
    return (json.dumps(cfg, sort_keys=True, indent=1) + "\n").encode()


def read_module_config(repl: ModuleRepl) -> dict[str, Any]:
    raw = repl.read(CONFIG_NAME)
    if raw is None:
        return {}
    try:
        cfg = json.loads(raw)
    except ValueError:
        return {}  # unreadable: provisioning writes a fresh one
    return cfg if isinstance(cfg, dict) else {}


def choose_identity(spec: ModuleSpec, old: dict[str, Any]) -> tuple[str, bytes, bool]:
    """(device id, key, whether the key is new). Keeps the module's own key unless told otherwise."""
    old_id = old.get("id") if is_device_id(old.get("id")) else None
    device_id = spec.device_id or old_id or registry.new_device_id()
    old_key = None
    if device_id == old_id:
        with contextlib.suppress(ValidationError, AttributeError):
            old_key = registry.parse_key(old.get("key", ""))
    if old_key is not None and not spec.rotate_key:
        return device_id, old_key, False
    return device_id, registry.new_key(), True


def install_packages(repl: ModuleRepl, packages: list[str], index: str) -> dict[str, str]:
    """mip-install each package through this REPL session; mip skips files whose hash matches."""
    from mpremote.commands import CommandError
    from mpremote.mip import _install_package  # mpremote's `mip install`, on our open transport

    outcome = {}
    for package in packages:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                _install_package(repl._t, package, index.rstrip("/"), MIP_TARGET, None, True)
        except CommandError as exc:
            raise ProvisioningError(
                "packages", f"mip could not install {package} from {index}: {exc}"
            ) from None
        outcome[package] = "installed" if "Installing:" in out.getvalue() else "up to date"
    return outcome


def pending_journal_frames(repl: ModuleRepl) -> int:
    """How many journaled frames (signed at send time with the key in its config.json) are still unacknowledged."""
    names = repl.listdir(JOURNAL_DIR)
    segments = {n: repl.read(f"{JOURNAL_DIR}/{n}") or b"" for n in names if is_segment(n)}
    return len(pending_fcnts(segments))


def check_config_on_module(repl: ModuleRepl, data: bytes) -> None:
    """Run the firmware's own config loader (fp.config, just copied) on the new config, under a
    scratch name: a config the firmware would refuse never replaces the module's config.json."""
    scratch = "config.check.json"
    repl.write(scratch, data)
    try:
        repl.exec(f"from fp import config as _c\n_c.load({scratch!r})", step="config")
    finally:
        repl.remove(scratch)


def verify(repl: ModuleRepl, files: dict[str, bytes]) -> None:
    remote = repl.hashes(sorted(files))
    bad = [path for path, data in sorted(files.items()) if remote.get(path) != sha256_hex(data)]
    if bad:
        raise ProvisioningError(
            "verify", f"read-back hash differs for {', '.join(bad)}; nothing was registered"
        )


def register(
    db_path: Path,
    spec: ModuleSpec,
    profile: dict[str, Any],
    device_id: str,
    key: bytes,
    interval: int,
    *,
    now: float,
) -> str:
    conn = connect(db_path)
    try:
        existing = registry.get_device(conn, device_id)
        if existing is not None:
            same_key = bytes(existing["key"]) == key
            same_settings = (existing["board"], existing["role"], existing["interval_s"]) == (
                profile["name"],
                spec.role,
                interval,
            ) and (not spec.name or existing["name"] == spec.name)
            if same_key and same_settings:
                return "unchanged"
            if same_settings:
                registry.rotate_key(conn, device_id, key=key, actor="cli", now=now)
                return "key rotated"
        registry.add_device(
            conn,
            device_id,
            key=key,
            name=spec.name or (existing or {}).get("name", ""),
            board=profile["name"],
            role=spec.role,
            interval_s=interval,
            actor="cli",
            now=now,
        )
        return "added" if existing is None else "re-provisioned"
    finally:
        conn.close()


def register_join_eui(db_path: Path, device_id: str, join_eui: str) -> None:
    """The JoinEUI the module was given, on its device row (the join server checks it)."""
    conn = connect(db_path)
    try:
        with transaction(conn):
            conn.execute("UPDATE devices SET join_eui = ? WHERE id = ?", (join_eui, device_id))
    finally:
        conn.close()


def check_database(db_path: Path) -> None:
    if not Path(db_path).exists():
        raise ProvisioningError("register", f"no edge database at {db_path}; run `fieldpost init` first")
    conn = connect(db_path)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'devices'").fetchone() is None:
            raise ProvisioningError("register", f"{db_path} has no devices table; run `fieldpost db migrate`")
    finally:
        conn.close()


def machine_reset(repl: ModuleRepl) -> None:
    repl.reset()


def provision_module(
    spec: ModuleSpec,
    *,
    db_path: Path,
    cache_dir: Path,
    boards_dir: Path = BOARDS_DIR,
    firmware_dir: Path = FIRMWARE_DIR,
    reset: Reset | None = machine_reset,
    wait_hello: bool | None = None,
    repl_timeout: float = 10.0,
    hello_timeout: float = 15.0,
    wait_uplink: float | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> ProvisionResult:
    """Provision one module; raises ValidationError / ProvisioningError with what went wrong.

    ``reset`` restarts the module after registration (None: leave it running);
    ``wait_hello`` (default: when the module is a bridge, the role with a serial link)
    then waits for its HELLO. ``wait_uplink`` (seconds) waits until the edge has stored an
    uplink from the device: the proof for a node, whose readings travel by radio and a bridge.
    """
    say = progress or (lambda stage, detail: None)
    check_spec(spec)
    profile = load_board(spec.board, boards_dir)
    check_database(db_path)
    packages = list(dict.fromkeys(spec.packages))

    say("connect", spec.port)
    with ModuleRepl(spec.port, timeout=repl_timeout) as repl:  # a wrong port fails before the compile
        say("compile", f"{spec.board} ({profile.get('arch') or 'bytecode'})")
        bundle = build_bundle(profile, cache_dir=cache_dir, firmware_dir=firmware_dir)
        old = read_module_config(repl)
        device_id, key, new_key = choose_identity(spec, old)
        cfg = module_config(spec, profile, old, device_id, key)
        config = config_bytes(cfg)
        pending = pending_journal_frames(repl) if new_key and old.get("key") else 0
        result = ProvisionResult(
            device_id=device_id,
            board=profile["name"],
            role=spec.role,
            key_rotated=new_key and bool(old.get("key")),
            journal_pending_at_rotation=pending,
            driver=sorted(p for p in bundle if p.startswith("lib/lora/")),
        )

        remote = repl.hashes([*sorted(bundle), CONFIG_NAME, MARKER])
        result.resumed = remote.get(MARKER) is not None
        stale = [path for path in sorted(bundle) if remote.get(path) != sha256_hex(bundle[path])]
        result.unchanged = [path for path in sorted(bundle) if path not in stale]
        config_stale = remote.get(CONFIG_NAME) != sha256_hex(config)
        marked = result.resumed
        if stale or config_stale or packages:
            # from here until the marker is removed the firmware will not run (safe mode)
            say("mark", MARKER)
            repl.write(MARKER, marker_bytes(device_id, clock()))
            marked = True

        for path in stale:
            say("copy", path)
            if "/" in path:
                repl.makedirs(path.rsplit("/", 1)[0])
            repl.write(path, bundle[path])
            result.copied.append(path)

        if packages:
            index = str(spec.offline_packages) if spec.offline_packages else MIP_INDEX
            say("packages", ", ".join(packages))
            result.packages = install_packages(repl, packages, index)

        say("verify", f"{len(bundle)} files")
        verify(repl, bundle)  # every file of the firmware, before the identity goes on

        say("config", f"identity and key of {device_id}")
        check_config_on_module(repl, config)  # checked even when unchanged: the firmware may have changed
        if config_stale:
            repl.write(CONFIG_NAME, config)
            result.copied.append(CONFIG_NAME)
        else:
            result.unchanged.append(CONFIG_NAME)
        verify(repl, {CONFIG_NAME: config})

        say("register", device_id)
        interval = int(cfg.get("interval", 300))
        registered_at = clock()
        result.registration = register(db_path, spec, profile, device_id, key, interval, now=registered_at)
        register_join_eui(db_path, device_id, cfg["join_eui"])
        log.info(
            "provision device=%s board=%s role=%s copied=%d registration=%r",
            device_id,
            profile["name"],
            spec.role,
            len(result.copied),
            result.registration,
        )

        if marked:
            say("release", f"removing {MARKER}")
            repl.remove(MARKER)
            if repl.hashes([MARKER]).get(MARKER) is not None:
                raise ProvisioningError("release", f"{MARKER} is still on the module; run again")

        if reset is not None:
            say("reset", spec.port)
            reset(repl)
    if reset is not None and (spec.role == "bridge" if wait_hello is None else wait_hello):
        say("hello", f"waiting for {device_id}")
        result.hello = wait_for_hello(spec.port, device_id, timeout=hello_timeout)
    if wait_uplink is not None:
        say("uplink", f"waiting for {device_id} at the edge")
        result.uplink_at = wait_for_uplink(db_path, device_id, since=registered_at, timeout=wait_uplink)
    return result


def marker_bytes(device_id: str, now: float) -> bytes:
    return (json.dumps({"device": device_id, "started": int(now)}, sort_keys=True) + "\n").encode()


def wait_for_uplink(
    db_path: Path,
    device_id: str,
    *,
    since: float,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
) -> float:
    """When the edge (``fieldpost run``) stored the first uplink of ``device_id`` after ``since``."""
    deadline = clock() + timeout
    conn = connect(db_path, readonly=True)
    try:
        while True:
            row = conn.execute("SELECT last_seen FROM devices WHERE id = ?", (device_id,)).fetchone()
            if row is not None and row["last_seen"] is not None and row["last_seen"] >= since:
                return row["last_seen"]
            if clock() >= deadline:
                raise ProvisioningError(
                    "uplink",
                    f"the edge stored no uplink from {device_id} within {timeout:g} s; is `fieldpost run` "
                    "running with a bridge in radio range?",
                )
            time.sleep(0.1)
    finally:
        conn.close()
