"""Cloud sync: the outbox drained into an MQTT broker or an HTTPS endpoint (docs/sync.md).

from edge.sync import SyncService, sync_status
SyncService(db_path, config["sync"], clock=time.time).start()
"""

from __future__ import annotations

from typing import Any

from edge.sync.config import SyncConfig, parse_sync_config
from edge.sync.state import sync_status

__all__ = ["SyncConfig", "SyncService", "parse_sync_config", "sync_status"]


def __getattr__(name: str) -> Any:
    # The service pulls in paho and ssl; status readers (CLI, panel) do not need them.
    if name == "SyncService":
        from edge.sync.service import SyncService

        return SyncService
    raise AttributeError(name)
