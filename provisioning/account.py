"""The ``fieldpost`` system account the service runs as, with its serial and GPIO groups.

Created with the shadow tools every Debian system has (``useradd``, ``groupadd``,
``usermod`` from the required package ``passwd``), with ``--prefix`` when the target
system is a directory (an image build, a test root) instead of this machine. The user
and group databases are read from ``<root>/etc/passwd`` and ``<root>/etc/group``, so
the same code serves both. `fieldpost init` and the Debian package's postinst both call
``ensure_account``: a Pi set up either way has the same account.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ProvisioningError

USER = "fieldpost"
GROUP = "fieldpost"
HOME = Path("/var/lib/fieldpost")
# dialout: the modules' serial ports. gpio: the GPIO chips on Raspberry Pi OS. The unit names
# both in SupplementaryGroups=, which fails the start when a group does not exist, so a
# missing gpio group (any Debian that is not Raspberry Pi OS) is created, empty and harmless.
EXTRA_GROUPS = ("dialout", "gpio")
CREATE_IF_MISSING = ("gpio",)

Runner = Callable[[Sequence[str]], object]
Note = Callable[[str], None]


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int
    groups: tuple[str, ...]  # supplementary groups


@dataclass(frozen=True)
class UserDb:
    """``<root>/etc/passwd`` and ``<root>/etc/group``, read once."""

    users: dict[str, tuple[int, int]]  # name -> (uid, primary gid)
    groups: dict[str, tuple[int, tuple[str, ...]]]  # name -> (gid, members)

    @classmethod
    def read(cls, root: Path) -> UserDb:
        users = {f[0]: (int(f[2]), int(f[3])) for f in _entries(Path(root) / "etc/passwd", 7)}
        groups = {
            f[0]: (int(f[2]), tuple(m for m in f[3].split(",") if m))
            for f in _entries(Path(root) / "etc/group", 4)
        }
        return cls(users, groups)

    def gid(self, group: str) -> int | None:
        entry = self.groups.get(group)
        return entry[0] if entry else None

    def uid(self, user: str) -> int | None:
        entry = self.users.get(user)
        return entry[0] if entry else None

    def name_of_uid(self, uid: int) -> str:
        return next((name for name, (u, _) in self.users.items() if u == uid), str(uid))

    def name_of_gid(self, gid: int) -> str:
        return next((name for name, (g, _) in self.groups.items() if g == gid), str(gid))


def _entries(path: Path, fields: int) -> list[list[str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ProvisioningError("account", f"{path} does not exist: is this a Debian system root?") from None
    except PermissionError:
        raise ProvisioningError(
            "account", f"cannot read {path}; fix: run it as root: `sudo fieldpost init`"
        ) from None
    rows = []
    for line in lines:
        parts = line.split(":")
        if len(parts) == fields and parts[2].isdigit():  # skips comments and NIS "+" lines
            rows.append(parts)
    return rows


def ensure_account(root: Path, note: Note, *, run: Runner | None = None) -> Account:
    """The user, its group and its groups, created where missing; returns the account as it is now."""
    root = Path(root)
    run = run or _run
    db = UserDb.read(root)
    missing_groups = [g for g in CREATE_IF_MISSING if db.gid(g) is None]
    needs_user = db.uid(USER) is None
    if (missing_groups or needs_user) and os.geteuid() != 0:
        what, where = (
            (f"the system user {USER!r}", root / "etc/passwd")
            if needs_user
            else (f"the group {missing_groups[0]!r}", root / "etc/group")
        )
        raise ProvisioningError(
            "account",
            f"{what} is missing from {where} and only root can create it; "
            "fix: run `sudo fieldpost init`, or install the fieldpost Debian package",
        )
    prefix = [] if root.resolve() == Path("/") else ["--prefix", str(root)]
    for group in missing_groups:
        run(["groupadd", "--system", *prefix, group])
        note(f"created group {group} (the unit's SupplementaryGroups= needs it)")
    if needs_user:
        # --user-group fails when a group of that name is left over (an earlier manual set-up): join it
        group_opt = ["--gid", GROUP] if db.gid(GROUP) is not None else ["--user-group"]
        run(
            [
                "useradd",
                "--system",
                *group_opt,
                "--home-dir",
                str(HOME),
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "Fieldpost edge daemon",
                *prefix,
                USER,
            ]
        )
        note(f"created system user {USER}")
    db = UserDb.read(root)
    if db.gid(GROUP) is None:
        raise ProvisioningError(
            "account",
            f"user {USER!r} exists but group {GROUP!r} is missing from {root / 'etc/group'}; "
            f"fix: sudo groupadd --system {GROUP} && sudo usermod --gid {GROUP} {USER}",
        )
    for group in EXTRA_GROUPS:
        entry = db.groups.get(group)
        if entry is None:
            note(f"group {group} does not exist here: not added")
        elif USER not in entry[1]:
            run(["usermod", "--append", "--groups", group, *prefix, USER])
            note(f"added {USER} to group {group}")
    db = UserDb.read(root)
    uid, _ = db.users[USER]
    groups = tuple(g for g in EXTRA_GROUPS if g in db.groups and USER in db.groups[g][1])
    return Account(uid=uid, gid=db.gid(GROUP), groups=groups)  # type: ignore[arg-type]


def _run(argv: Sequence[str]) -> None:
    if shutil.which(argv[0]) is None:
        raise ProvisioningError(
            "account", f"{argv[0]} is not installed; fix: sudo apt install passwd (it provides {argv[0]})"
        )
    result = subprocess.run(list(argv), capture_output=True, text=True)
    if result.returncode != 0:
        raise ProvisioningError(
            "account", f"`{' '.join(argv)}` failed: {result.stderr.strip() or result.stdout.strip()}"
        )
