"""The files a module gets: the firmware bundle for its board (and later its config).

The bundle is built by the firmware's own tool (edge/tools/build_firmware.py: mpy-cross
for the board's arch, main.py/boot.py as source, the profile as board.json, a manifest
of SHA-256 hashes). Bundles are cached by the hash of every firmware source and the
profile, so re-runs and batches compile once, and a changed source rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from edge.errors import ProvisioningError
from edge.tools import build_firmware

FIRMWARE_DIR = build_firmware.FIRMWARE_DIR
CONFIG_NAME = "config.json"  # read by firmware/main.py from the module's working directory
MANIFEST = "manifest.json"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundle_key(profile: dict[str, Any], firmware_dir: Path) -> str:
    h = hashlib.sha256(json.dumps(profile, sort_keys=True).encode())
    sources = build_firmware.bundle_files(profile, firmware_dir)
    for rel in sources + build_firmware.data_files(profile, firmware_dir):
        h.update(str(rel).encode() + b"\0" + (firmware_dir / rel).read_bytes() + b"\0")
    return h.hexdigest()[:20]


def build_bundle(
    profile: dict[str, Any], *, cache_dir: Path, firmware_dir: Path = FIRMWARE_DIR
) -> dict[str, bytes]:
    """{path on the module: bytes} for the firmware and board profile of ``profile``."""
    try:
        key = bundle_key(profile, firmware_dir)
    except build_firmware.BuildError as exc:
        raise ProvisioningError("compile", str(exc)) from None
    out = Path(cache_dir) / f"{profile['name']}-{key}"
    if not (out / MANIFEST).exists():
        tmp = out.with_name(f".{out.name}.{os.getpid()}")
        try:
            build_firmware.build_bundle(tmp, profile.get("arch"), profile=profile, firmware_dir=firmware_dir)
        except build_firmware.BuildError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ProvisioningError("compile", str(exc)) from None
        if (out / MANIFEST).exists():  # a parallel run built it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(out, ignore_errors=True)
            tmp.rename(out)
    manifest = json.loads((out / MANIFEST).read_text())
    files = {}
    for path, digest in manifest["files"].items():
        if path == MANIFEST:
            continue
        data = (out / path).read_bytes()
        if sha256_hex(data) != digest:  # a damaged cache must not reach a module
            shutil.rmtree(out, ignore_errors=True)
            raise ProvisioningError(
                "compile", f"cached bundle {out} was damaged ({path}); run again to rebuild"
            )
        files[path] = data
    if "main.py" not in files:
        raise ProvisioningError("compile", f"the firmware bundle for {profile['name']} has no main.py")
    return files
