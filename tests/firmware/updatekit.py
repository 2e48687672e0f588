"""Firmware bundles for update tests and benchmarks: copies of today's firmware at another version,
with small changes, built for the virtual board by edge.tools.build_firmware (mpy-cross)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from edge.tools import build_firmware

FIRMWARE = build_firmware.FIRMWARE_DIR
V1, V2 = build_firmware.firmware_versions()[0], "9.9.0"
UPDATES_FROM = build_firmware.firmware_versions()[1]  # the oldest updater a package of V2 needs


def firmware_tree(dest: Path, *, version: str, edits: dict[str, str], extra: dict[str, str]) -> Path:
    """A copy of the firmware sources at ``version``, with text appended to some files and new files."""
    shutil.copytree(FIRMWARE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    device = dest / "fp" / "device.py"
    device.write_text(
        re.sub(r'^FW_VERSION = ".*"$', f'FW_VERSION = "{version}"', device.read_text(), flags=re.M)
    )
    for rel, text in edits.items():
        path = dest / rel
        path.write_text(path.read_text() + text)
    for rel, text in extra.items():
        (dest / rel).write_text(text)
    return dest


def build_bundles(root: Path, *, broken: bool = False) -> dict[str, Path]:
    """Bundles of the virtual board: v1 (today's firmware plus a file v2 retires), v2 (one module
    changed, one added, one removed) and, with ``broken``, v2 with a main() that raises at boot."""
    profile = build_firmware.load_profile("unix")
    trees = {
        "v1": firmware_tree(root / "src1", version=V1, edits={}, extra={"fp/retired.py": "GONE = 1\n"}),
        "v2": firmware_tree(
            root / "src2",
            version=V2,
            edits={"fp/lpp.py": "\nUPDATED = 2\n"},
            extra={"fp/added.py": "NEW = 1\n"},
        ),
    }
    if broken:
        tree = firmware_tree(root / "src3", version=V2, edits={}, extra={})
        app = tree / "fp" / "app.py"
        app.write_text(
            app.read_text().replace(
                'async def main(cfg_path="config.json", hal=None):\n',
                'async def main(cfg_path="config.json", hal=None):\n    raise RuntimeError("broken update")\n',
            )
        )
        assert "broken update" in app.read_text()
        trees["broken"] = tree
    out = {}
    for name, src in trees.items():
        out[name] = root / name
        build_firmware.build_bundle(out[name], None, profile=profile, firmware_dir=src, virtual=True)
    return out


def tree(root: Path) -> dict[str, str]:
    """Every firmware file on the module (the updater's own area left out) -> its SHA-256.

    The updater's area is pruned, not walked: a module that has just booted may be clearing it
    (confirm removes .update/new) while we look, and what is in it is not the running set."""
    files = {}
    for here, dirs, names in os.walk(root):
        if Path(here) == root:
            dirs[:] = [d for d in dirs if not d.startswith(".update")]
        for name in names:
            p = Path(here, name)
            rel = str(p.relative_to(root))
            if not rel.startswith(".update") and name != "manifest.json":
                files[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return dict(sorted(files.items()))
