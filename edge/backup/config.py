"""The ``[backup]`` section: where scheduled backups go, how often, how many are kept.

    [backup]
    directory = "/media/usb/fieldpost"   # required to turn scheduled backups on; never created
    daily = true                         # a backup every day ...
    weekly = true                        # ... and one every week
    keep_daily = 7                       # how many of each are kept (older ones are deleted)
    keep_weekly = 4
    grace_s = 3600                       # overdue (alarm) once a kind is this late
    retry_s = 900                        # after a failure, try again this much later
    check_every_s = 60

The directory is not created: a USB stick that is not mounted must not turn into backups on the
SD card under the empty mount point. Errors are ConfigError naming ``backup.<key>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.errors import ConfigError

INTERVAL_S = {"daily": 86_400.0, "weekly": 7 * 86_400.0}


@dataclass(frozen=True)
class BackupConfig:
    directory: str | None = None  # None: no scheduled backups
    daily: bool = True
    weekly: bool = True
    keep_daily: int = 7
    keep_weekly: int = 4
    grace_s: float = 3600.0
    retry_s: float = 900.0
    check_every_s: float = 60.0

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind in ("weekly", "daily") if getattr(self, kind))

    def keep(self, kind: str) -> int:
        return {"daily": self.keep_daily, "weekly": self.keep_weekly}.get(kind, 0)


def parse_backup(table: Any) -> BackupConfig:
    if table is None:
        return BackupConfig()
    if not isinstance(table, dict):
        raise ConfigError("[backup]: must be a table")
    defaults = BackupConfig()
    unknown = sorted(set(table) - set(BackupConfig.__dataclass_fields__))
    if unknown:
        raise ConfigError(f"backup.{unknown[0]}: unknown key")
    directory = table.get("directory")
    if directory is not None and (not isinstance(directory, str) or not directory.startswith("/")):
        raise ConfigError(f"backup.directory: {directory!r} must be an absolute path")
    values: dict[str, Any] = {"directory": directory}
    for key in ("daily", "weekly"):
        value = table.get(key, getattr(defaults, key))
        if not isinstance(value, bool):
            raise ConfigError(f"backup.{key}: {value!r} must be true or false")
        values[key] = value
    for key in ("keep_daily", "keep_weekly"):
        value = table.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
            raise ConfigError(f"backup.{key}: {value!r} must be a whole number 1 .. 1000")
        values[key] = value
    for key in ("grace_s", "retry_s", "check_every_s"):
        value = table.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"backup.{key}: {value!r} must be a number of seconds above 0")
        values[key] = float(value)
    return BackupConfig(**values)
