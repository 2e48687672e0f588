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

from edge.config.schema import build, setting

INTERVAL_S = {"daily": 86_400.0, "weekly": 7 * 86_400.0}


def _absolute(value: str | None) -> str | None:
    return None if value is None or value.startswith("/") else "must be an absolute path"


@dataclass(frozen=True)
class BackupConfig:
    """Scheduled backups of the database (docs/services.md); off until a directory is given."""

    directory: str | None = setting(
        None, doc="Where scheduled backups go (required to turn them on; never created)", check=_absolute
    )
    daily: bool = setting(True, doc="A backup every day")
    weekly: bool = setting(True, doc="A backup every week")
    keep_daily: int = setting(7, doc="Daily backups kept (older ones are deleted)", lo=1, hi=1000)
    keep_weekly: int = setting(4, doc="Weekly backups kept", lo=1, hi=1000)
    grace_s: float = setting(
        3600.0, doc="Overdue (an alarm) once a kind is this late", unit="s", lo=0.001, hi=30 * 86400
    )
    retry_s: float = setting(
        900.0, doc="After a failure, try again this much later", unit="s", lo=0.001, hi=86400
    )
    check_every_s: float = setting(
        60.0, doc="How often the schedule is looked at", unit="s", lo=0.001, hi=86400
    )

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind in ("weekly", "daily") if getattr(self, kind))

    def keep(self, kind: str) -> int:
        return {"daily": self.keep_daily, "weekly": self.keep_weekly}.get(kind, 0)


def parse_backup(table: Any) -> BackupConfig:
    """The validated ``[backup]`` table (ConfigError naming ``backup.<key>``)."""
    return build(BackupConfig, table, "backup")
