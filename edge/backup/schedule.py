"""When a scheduled backup is due, when it is overdue, which old ones go: pure functions of times.

``history`` is what the ``backups`` table says about one kind: the start of its last good backup
and of its last attempt (good or failed), or None.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.backup.config import INTERVAL_S, BackupConfig


@dataclass(frozen=True)
class KindHistory:
    last_ok: float | None = None
    last_attempt: float | None = None


def due(kind: str, history: KindHistory, config: BackupConfig, now: float) -> bool:
    """A backup of ``kind`` should start now: the last good one is an interval old (or there is
    none), and the last attempt, if it failed, is ``retry_s`` old."""
    if history.last_ok is not None and now - history.last_ok < INTERVAL_S[kind]:
        return False
    failed_since = history.last_attempt is not None and history.last_attempt != history.last_ok
    return not failed_since or now - history.last_attempt >= config.retry_s


def overdue(kind: str, history: KindHistory, config: BackupConfig, now: float, since: float) -> bool:
    """No good backup of ``kind`` for an interval plus the grace. ``since``: when scheduling began
    (the service's start), which counts as the last good backup while there has been none."""
    last = history.last_ok if history.last_ok is not None else since
    return now - last > INTERVAL_S[kind] + config.grace_s


def to_prune(good: list[tuple[int, float]], keep: int) -> list[int]:
    """Ids of the good backups (id, started_at) beyond the ``keep`` newest."""
    newest_first = sorted(good, key=lambda entry: entry[1], reverse=True)
    return [backup_id for backup_id, _ in newest_first[keep:]]
