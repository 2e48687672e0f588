"""Bridges as the panel shows them: link state, counters, and the nodes heard through each.

When the panel runs inside the daemon it reads the live links (the link manager's figures, the
same ones /metrics reports): a bridge is online while its serial link is up. A panel on its own has
no link to look at, so it says a bridge is "relaying" while a node heard through it is online.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from webui import queries

COUNTERS = ("frames_rx", "frames_tx", "crc_errors", "frame_errors", "nacks_tx", "retransmits", "reconnects")


def overview(
    conn: sqlite3.Connection,
    links: Callable[[], list[dict[str, Any]]] | None,
    *,
    now: float,
    online_intervals: int,
) -> list[dict[str, Any]]:
    figures = links() if links is not None else None
    by_peer = {f["peer_id"]: f for f in figures or () if f.get("peer_id")}
    registered = {row["id"]: row for row in conn.execute("SELECT * FROM devices WHERE role = 'bridge'")}
    heard: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(
        "SELECT id, name, last_seen, last_rssi, last_snr, interval_s, last_bridge FROM devices"
        " WHERE last_bridge IS NOT NULL AND role = 'node' ORDER BY name, id"
    ):
        heard.setdefault(row["last_bridge"], []).append(
            {
                "id": row["id"],
                "name": row["name"],
                "last_seen": row["last_seen"],
                "last_rssi": row["last_rssi"],
                "online": queries.is_online(row, now, online_intervals),
            }
        )
    out = []
    for bridge_id in sorted(set(registered) | set(by_peer) | set(heard)):
        link = by_peer.get(bridge_id)
        nodes = heard.get(bridge_id, [])
        if link is not None:
            state = "online" if link.get("up") else "offline"
            source = "link"
        elif figures is not None and bridge_id in registered:
            state, source = "offline", "link"  # the daemon has no link to it
        else:
            state = "relaying" if any(n["online"] for n in nodes) else "silent"
            source = "heard"
        row = registered.get(bridge_id)
        out.append(
            {
                "id": bridge_id,
                "name": row["name"] if row is not None else "",
                "registered": row is not None,
                "state": state,
                "source": source,
                "path": link.get("path") if link else None,
                "firmware": (link or {}).get("firmware") or (row["firmware"] if row is not None else ""),
                "last_error": (link or {}).get("last_error") or "",
                "counters": {name: (link or {}).get(name, 0) for name in COUNTERS} if link else None,
                "nodes": nodes,
                "last_relayed": max((n["last_seen"] or 0 for n in nodes), default=None) or None,
            }
        )
    return out
