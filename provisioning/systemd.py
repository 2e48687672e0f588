"""Installing and enabling systemd units, under a root prefix.

Enabling is done the way ``systemctl enable`` does it offline: a symlink in
``<target>.wants/`` for each WantedBy= of the unit's [Install] section. That works
the same on the live system and in an image or test directory (``root``); on the
live system (root "/") systemd is then told to reload and start the units.

The shipped unit runs ``/usr/bin/fieldpost`` (where the Debian package puts it); installed
by `fieldpost init` from a pip install, it runs this installation's ``fieldpost`` instead.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edge.errors import ConfigError

UNIT_DIR = Path("etc/systemd/system")
UNIT_SUFFIXES = (".service", ".timer", ".socket", ".path")
PACKAGED_BIN = "/usr/bin/fieldpost"

Runner = Callable[[Sequence[str]], object]


def find_units(units_dir: Path) -> list[Path]:
    units = (
        sorted(p for p in Path(units_dir).iterdir() if p.suffix in UNIT_SUFFIXES)
        if units_dir.is_dir()
        else []
    )
    if not units:
        raise ConfigError(f"systemd: no unit files (*.service, *.timer) in {units_dir}")
    return units


def wanted_by(unit_text: str) -> list[str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # configparser's documented way: unit keys are case-sensitive
    parser.read_string(unit_text)
    if not parser.has_section("Install"):
        return []
    return parser.get("Install", "WantedBy", fallback="").split()


def this_fieldpost() -> str:
    """The ``fieldpost`` command of the running installation (beside its Python), else the package's."""
    beside = Path(sys.executable).with_name("fieldpost")
    return str(beside) if beside.exists() else PACKAGED_BIN


def render_unit(text: str, fieldpost_bin: str) -> str:
    return text.replace(f"ExecStart={PACKAGED_BIN} ", f"ExecStart={fieldpost_bin} ")


def install_units(units_dir: Path, root: Path, *, run: Runner | None = None) -> list[str]:
    """Copy units into <root>/etc/systemd/system and enable them; return the unit names."""
    root = Path(root)
    target_dir = root / UNIT_DIR
    target_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for unit in find_units(Path(units_dir)):
        (target_dir / unit.name).write_text(render_unit(unit.read_text(encoding="utf-8"), this_fieldpost()))
        (target_dir / unit.name).chmod(0o644)
        for target in wanted_by(unit.read_text(encoding="utf-8")):
            wants = target_dir / f"{target}.wants"
            wants.mkdir(exist_ok=True)
            link = wants / unit.name
            if link.is_symlink() or link.exists():
                link.unlink()
            # Absolute inside the system, as systemctl makes it: valid once the root is the real root.
            link.symlink_to(Path("/") / UNIT_DIR / unit.name)
        names.append(unit.name)
    if root.resolve() == Path("/"):
        runner = run or (lambda argv: subprocess.run(argv, check=True))
        runner(["systemctl", "daemon-reload"])
        runner(["udevadm", "control", "--reload-rules"])
        runner(["systemctl", "start", *[n for n in names if n.endswith((".service", ".timer"))]])
    return names
