"""Owners and modes of Fieldpost's files, so the service (user ``fieldpost``) can read and write them.

Configuration and keys belong to root and are readable by the group: the service can read
its secrets but not change them. The database and everything beside it belong to the
service. A database created by root (an older manual install, a restore run as root) is
handed over to the service, with a note, and never deleted.

A path the administrator has given a dpkg-statoverride keeps what they chose.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ProvisioningError
from provisioning.account import GROUP, USER, UserDb

STATE_DIR = Path("/var/lib/fieldpost")
# Files the daemon and the panel keep beside the database (SQLite's WAL files, the panel's own).
SIDECARS = ("-wal", "-shm", "-journal", ".panel-secret", ".setup-code", ".panel-cert.pem", ".panel-key.pem")
PRIVATE_SIDECARS = (".panel-secret", ".setup-code", ".panel-key.pem")

Note = Callable[[str], None]


@dataclass(frozen=True)
class Wanted:
    path: Path  # absolute inside the target system
    owner: str
    group: str
    mode: int


def wanted(
    *, config: Path, db: Path, tls_cert: Path | None = None, tls_key: Path | None = None
) -> list[Wanted]:
    """What each path should be; paths that do not exist are skipped when applied."""
    rules = [
        Wanted(config.parent, "root", GROUP, 0o750),
        Wanted(config, "root", GROUP, 0o640),
    ]
    if tls_key is not None:
        rules += [Wanted(tls_key.parent, "root", GROUP, 0o750), Wanted(tls_key, "root", GROUP, 0o640)]
    if tls_cert is not None:
        rules += [Wanted(tls_cert.parent, "root", GROUP, 0o750), Wanted(tls_cert, "root", GROUP, 0o644)]
    rules.append(Wanted(db.parent, USER, GROUP, 0o750))
    rules.append(Wanted(db, USER, GROUP, 0o640))
    for suffix in SIDECARS:
        rules.append(
            Wanted(Path(f"{db}{suffix}"), USER, GROUP, 0o600 if suffix in PRIVATE_SIDECARS else 0o640)
        )
    return _unique(rules)


def state_dir_contents(root: Path, db: Path) -> list[Wanted]:
    """Everything else in /var/lib/fieldpost is the service's too (backups, exports made as root)."""
    if db.parent != STATE_DIR:
        return []  # a database elsewhere may share its folder with other programs: leave them be
    found = []
    base = under(root, STATE_DIR)
    for path in sorted(base.rglob("*")) if base.is_dir() else []:
        if path.is_symlink():
            continue
        inside = Path("/") / path.relative_to(root)
        mode = 0o750 if path.is_dir() else stat.S_IMODE(path.lstat().st_mode) & 0o750
        found.append(Wanted(inside, USER, GROUP, mode))
    return found


def apply(root: Path, rules: list[Wanted], note: Note, *, fresh: frozenset[Path] = frozenset()) -> int:
    """Bring each existing path in line; return how many were changed (0: all was right already).

    ``fresh``: paths this run created (as root, so of course root's); the others, found owned by
    root where the service should own them, get a note saying so.
    """
    root = Path(root)
    users = UserDb.read(root)
    overrides = statoverrides(root)
    changed = 0
    for rule in rules:
        path = under(root, rule.path)
        if not path.exists() or path.is_symlink() or str(rule.path) in overrides:
            continue
        uid, gid = users.uid(rule.owner), users.gid(rule.group)
        if uid is None or gid is None:
            missing = rule.owner if uid is None else rule.group
            raise ProvisioningError(
                "ownership",
                f"{rule.path} should belong to {rule.owner}:{rule.group}, but {missing!r} does not exist; "
                "fix: run `sudo fieldpost init`, which creates the account",
            )
        st = path.lstat()
        old_owner = f"{users.name_of_uid(st.st_uid)}:{users.name_of_gid(st.st_gid)}"
        try:
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.chown(path, uid, gid, follow_symlinks=False)
                # a file (the database) of the service's that root made before this run: say so
                found_as_root = st.st_uid == 0 and rule.owner != "root" and rule.path not in fresh
                found_as_root = found_as_root and not path.is_dir()
                why = (
                    " (it belonged to root: an older manual install, a restore run as root?)"
                    if found_as_root
                    else ""
                )
                note(f"{rule.path}: owner {old_owner} -> {rule.owner}:{rule.group}{why}")
                changed += 1
            if stat.S_IMODE(st.st_mode) != rule.mode:
                os.chmod(path, rule.mode)
                note(f"{rule.path}: mode {stat.S_IMODE(st.st_mode):04o} -> {rule.mode:04o}")
                changed += 1
        except OSError as exc:
            raise fs_error(rule.path, exc, "change the owner or mode of") from None
    return changed


def statoverrides(root: Path) -> set[str]:
    """Paths with a dpkg-statoverride: the administrator's choice wins over ours."""
    try:
        text = (Path(root) / "var/lib/dpkg/statoverride").read_text(encoding="utf-8")
    except OSError:
        return set()
    return {line.split(" ", 3)[3] for line in text.splitlines() if line.count(" ") >= 3}


def fs_error(path: Path, exc: OSError, action: str) -> ProvisioningError:
    """A file-system failure as a message naming the path, what went wrong and how to fix it."""
    if exc.errno == errno.EROFS:
        fix = (
            "remount it read-write (e.g. `sudo mount -o remount,rw /`), then run `sudo fieldpost init` again"
        )
    elif exc.errno in (errno.EACCES, errno.EPERM) and os.geteuid() != 0:
        fix = "run it as root: `sudo fieldpost init`"
    elif exc.errno == errno.EPERM:
        fix = f"check whether it is immutable (`lsattr {path}`; `sudo chattr -i {path}`)"
    else:
        fix = "check the file system"
    return ProvisioningError("files", f"cannot {action} {path}: {exc.strerror}; fix: {fix}")


def under(root: Path, path: Path) -> Path:
    return Path(root) / Path(path).relative_to("/")


def _unique(rules: list[Wanted]) -> list[Wanted]:
    seen: dict[Path, Wanted] = {}
    for rule in rules:
        seen.setdefault(rule.path, rule)
    return list(seen.values())
