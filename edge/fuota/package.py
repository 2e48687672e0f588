"""Update manifests and packages: pure logic, no I/O.

A board bundle (edge/tools/build_firmware.py) carries ``manifest.json``: the board, the firmware
version, every file with its SHA-256 and size, the total size, and the oldest version the
module's updater can move from (``min_previous``). A *package* is what travels to a module:

    b"FPUP" + format (1 byte) + zlib( header line (JSON) + per file: path "\\n" + size (4 bytes BE) + bytes )

The header holds the target manifest (every file's hash, so the module can check the whole
result), the base version a delta applies on (null for a full package) and the files removed.
A delta carries only the files whose hash changed; a full package carries every file. The module
(firmware/fp/update.py) streams it through MicroPython's ``deflate`` into a staging area, checks
every file against the manifest, and swaps at the next boot.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zlib
from dataclasses import dataclass

from edge.errors import UpdateError

MAGIC = b"FPUP"
FORMAT = 1
MANIFEST = "manifest.json"
# A 4 KB deflate window: the module inflates with a buffer of this size in a heap of 64 KB or less
# (the zlib header carries it; the default 32 KB window would not fit beside the firmware).
WINDOW_BITS = 12
# Files a module must never take from a package: its identity and its state stay its own.
MODULE_OWNED = ("config.json",)
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def parse_version(text: str) -> tuple[int, int, int]:
    """ "1.2.3" -> (1, 2, 3); anything else raises UpdateError naming it."""
    match = _VERSION.match(str(text))
    if match is None:
        raise UpdateError(f"version {text!r} is not MAJOR.MINOR.PATCH")
    return int(match[1]), int(match[2]), int(match[3])


@dataclass(frozen=True)
class Manifest:
    board: str
    arch: str | None
    version: str
    min_previous: str
    files: dict[str, str]  # path -> sha256 hex
    sizes: dict[str, int]  # path -> bytes

    @property
    def total_size(self) -> int:
        return sum(self.sizes.values())

    def as_dict(self) -> dict:
        return {
            "board": self.board,
            "arch": self.arch,
            "version": self.version,
            "min_previous": self.min_previous,
            "total_size": self.total_size,
            "files": self.files,
            "sizes": self.sizes,
        }

    @classmethod
    def from_dict(cls, doc: dict, where: str = "manifest") -> Manifest:
        try:
            files = {str(k): str(v) for k, v in doc["files"].items()}
            sizes = {str(k): int(v) for k, v in doc["sizes"].items()}
            manifest = cls(
                board=str(doc["board"]),
                arch=doc.get("arch"),
                version=str(doc["version"]),
                min_previous=str(doc["min_previous"]),
                files=files,
                sizes=sizes,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UpdateError(f"{where}: missing or bad field: {exc}") from None
        parse_version(manifest.version)
        parse_version(manifest.min_previous)
        if set(files) != set(sizes):
            raise UpdateError(f"{where}: files and sizes name different paths")
        for path, digest in files.items():
            if not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise UpdateError(f"{where}: {path}: not a SHA-256 hex digest")
            if path.startswith("/") or ".." in path.split("/") or path in MODULE_OWNED or path == MANIFEST:
                raise UpdateError(f"{where}: {path}: not a path a package may write")
        return manifest


@dataclass(frozen=True)
class Plan:
    """What a package from ``base`` (None: full) to ``target`` carries."""

    target: Manifest
    base: Manifest | None
    changed: tuple[str, ...]
    removed: tuple[str, ...]

    @property
    def is_delta(self) -> bool:
        return self.base is not None

    @property
    def payload_size(self) -> int:
        return sum(self.target.sizes[p] for p in self.changed)


def plan(target: Manifest, base: Manifest | None = None, *, full: bool = False) -> Plan:
    """The files to send to a module running ``base``: the changed ones, or every one if ``full``
    (a module whose files may be damaged); the files only ``base`` has are removed either way.
    Without a base (the module's version unknown to the edge) every file goes and none is removed:
    files the new version does not list stay behind unused. Refuses a base for another board, or
    one the target cannot move from."""
    if base is None:
        return Plan(target, None, tuple(sorted(target.files)), ())
    if base.board != target.board:
        raise UpdateError(f"a {base.board} bundle is no base for a {target.board} update")
    if parse_version(base.version) < parse_version(target.min_previous):
        raise UpdateError(
            f"{target.board} {target.version} needs at least {target.min_previous} on the module; "
            f"{base.version} must take a full package"
        )
    changed = tuple(sorted(p for p, h in target.files.items() if full or base.files.get(p) != h))
    removed = tuple(sorted(p for p in base.files if p not in target.files))
    return Plan(target, None if full else base, changed, removed)


def check_upgrade(running: str, target: Manifest, *, allow_downgrade: bool = False) -> None:
    """A module running ``running`` may take ``target`` (newer, unless downgrading is asked)."""
    if not allow_downgrade and parse_version(target.version) <= parse_version(running):
        raise UpdateError(f"the module already runs {running}; {target.version} is not newer")


def pack(the_plan: Plan, contents: dict[str, bytes]) -> bytes:
    """The package for ``the_plan``; ``contents`` holds at least the changed files (checked)."""
    header = {
        "manifest": the_plan.target.as_dict(),
        "base": the_plan.base.version if the_plan.base else None,
        "removed": list(the_plan.removed),
        "files": list(the_plan.changed),
    }
    body = [json.dumps(header, separators=(",", ":"), sort_keys=True).encode() + b"\n"]
    for path in the_plan.changed:
        data = contents[path]
        if len(data) != the_plan.target.sizes[path] or _sha256(data) != the_plan.target.files[path]:
            raise UpdateError(f"{path}: its bytes do not match the manifest of {the_plan.target.version}")
        body.append(path.encode() + b"\n" + struct.pack(">I", len(data)) + data)
    packer = zlib.compressobj(9, zlib.DEFLATED, WINDOW_BITS)
    return MAGIC + bytes([FORMAT]) + packer.compress(b"".join(body)) + packer.flush()


def unpack(package: bytes) -> tuple[dict, dict[str, bytes]]:
    """(header, {path: bytes}) of a package, every file checked against its manifest hash."""
    if package[:4] != MAGIC:
        raise UpdateError("not a Fieldpost update package (no FPUP magic)")
    if package[4:5] != bytes([FORMAT]):
        raise UpdateError(f"package format {package[4:5].hex() or 'missing'} is not {FORMAT}")
    try:
        body = zlib.decompress(package[5:])
    except zlib.error as exc:
        raise UpdateError(f"package body does not inflate: {exc}") from None
    line_end = body.find(b"\n")
    if line_end < 0:
        raise UpdateError("package has no header line")
    try:
        header = json.loads(body[:line_end])
    except ValueError as exc:
        raise UpdateError(f"package header is not JSON: {exc}") from None
    manifest = Manifest.from_dict(header.get("manifest") or {}, "package manifest")
    files: dict[str, bytes] = {}
    at = line_end + 1
    for path in header.get("files", []):
        name_end = body.find(b"\n", at)
        if name_end < 0 or body[at:name_end].decode() != path:
            raise UpdateError(f"package: file {path} missing or out of order")
        (size,) = struct.unpack_from(">I", body, name_end + 1)
        data = body[name_end + 5 : name_end + 5 + size]
        if len(data) != size or _sha256(data) != manifest.files.get(path):
            raise UpdateError(f"package: {path} does not match its manifest hash")
        files[path] = data
        at = name_end + 5 + size
    if at != len(body):
        raise UpdateError(f"package: {len(body) - at} bytes after the last file")
    return header, files


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
