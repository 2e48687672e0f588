"""Before the daemon opens its database: can this user write it? If not, say which path and how to fix it.

SQLite alone would fail later and vaguely ("attempt to write a readonly database"), e.g.
for a database created by root in an older manual install and now opened by the
service's user, or one placed outside the only folder the systemd unit leaves writable.
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from edge.errors import SetupError

# SQLite writes these beside the database (WAL mode); the folder must take new files too.
SIDECARS = ("-wal", "-shm")


def check_database(db_path: Path) -> None:
    """Raise SetupError naming the first path this process cannot write, with the fix."""
    db_path = Path(db_path)
    folder = db_path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the daemon creates what is missing below the nearest existing folder
    for path in [db_path, *(Path(f"{db_path}{s}") for s in SIDECARS)]:
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise SetupError(_message(path, db_path))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SetupError(_message(folder, db_path))


def _message(path: Path, db_path: Path) -> str:
    user = _name(pwd.getpwuid, os.geteuid())
    if _read_only_fs(path):
        return (
            f"{path} is on a read-only file system for this process (user {user}); the database "
            f"{db_path} must be writable. Under the systemd unit only /var/lib/fieldpost is writable: "
            "fix: keep [edge] db under /var/lib/fieldpost, or add the folder to ReadWritePaths= "
            "with `sudo systemctl edit fieldpost`"
        )
    st = path.stat()
    owner = f"{_name(pwd.getpwuid, st.st_uid)}:{_name(grp.getgrgid, st.st_gid)}"
    return (
        f"{path} is not writable by user {user} (owner {owner}, mode {st.st_mode & 0o7777:04o}); "
        f"the database {db_path} and its folder must belong to the user running fieldpost "
        f"(a database made by root in an older install?). Fix: sudo chown -R {user}: {path}, "
        "or run `sudo fieldpost init`, which sets every owner and mode"
    )


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _name(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)
