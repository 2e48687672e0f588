"""The firmware bundles the edge has kept, one folder per board and version:

    <root>/<board>/<version>/manifest.json + the bundle's files

A bundle is checked against its own manifest before it is kept (every file, its size and hash)
and copied in under a temporary name first, so a kept bundle is always whole. Packages for a
module are built from here: a delta from the version the module runs (its HELLO says which) when
that version was kept, otherwise every file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from edge.errors import UpdateError
from edge.fuota import package


def read_bundle(bundle: Path) -> tuple[package.Manifest, dict[str, bytes]]:
    """The manifest and files of a bundle folder, every file checked against the manifest."""
    path = Path(bundle) / package.MANIFEST
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UpdateError(f"{bundle}: no {package.MANIFEST} (build it with `make firmware`)") from None
    except ValueError as exc:
        raise UpdateError(f"{path}: not JSON: {exc}") from None
    manifest = package.Manifest.from_dict(doc, str(path))
    files = {}
    for rel, digest in manifest.files.items():
        try:
            data = (Path(bundle) / rel).read_bytes()
        except FileNotFoundError:
            raise UpdateError(f"{bundle}: {rel} is in the manifest but missing") from None
        if len(data) != manifest.sizes[rel] or hashlib.sha256(data).hexdigest() != digest:
            raise UpdateError(f"{bundle}: {rel} does not match its manifest (damaged or edited)")
        files[rel] = data
    return manifest, files


class BundleStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    def keep(self, bundle: Path) -> package.Manifest:
        """Keep a copy of a built bundle; keeping the same bundle again changes nothing, keeping
        different files under a version already kept is refused (versions are immutable)."""
        manifest, files = read_bundle(bundle)
        dest = self.root / manifest.board / manifest.version
        if dest.exists():
            kept, _ = read_bundle(dest)
            if kept.files != manifest.files:
                raise UpdateError(
                    f"{manifest.board} {manifest.version} is already kept with other files; "
                    "raise FW_VERSION in firmware/fp/device.py for a new build"
                )
            return kept
        tmp = dest.with_name(f".{manifest.version}.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        (tmp / package.MANIFEST).write_text(json.dumps(manifest.as_dict(), indent=1) + "\n")
        os.replace(tmp, dest)
        return manifest

    def boards(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def versions(self, board: str) -> list[str]:
        """Kept versions of ``board``, oldest first."""
        folder = self.root / board
        if not folder.is_dir():
            return []
        kept = [p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(kept, key=package.parse_version)

    def bundle(self, board: str, version: str) -> tuple[package.Manifest, dict[str, bytes]]:
        folder = self.root / board / version
        if not folder.is_dir():
            known = ", ".join(self.versions(board)) or "none"
            raise UpdateError(f"no {board} bundle {version} kept (kept: {known})")
        return read_bundle(folder)

    def package_for(
        self, board: str, version: str, running: str | None, *, full: bool = False
    ) -> tuple[package.Plan, bytes]:
        """The package that moves a module of ``board`` running ``running`` to ``version``."""
        target, contents = self.bundle(board, version)
        if running is not None:
            package.check_upgrade(running, target)
        base = None
        if running is not None and running in self.versions(board):
            base, _ = self.bundle(board, running)
        plan = package.plan(target, base, full=full)
        return plan, package.pack(plan, contents)
