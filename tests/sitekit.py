"""A virtual site for end-to-end tests: the real firmware as one node and one bridge (MicroPython unix
port, radio on loopback UDP, the bridge's UART on a pty) in front of the real edge daemon.

The rules, sync and panel end-to-end tests all build the same site and differ only in timing, in what
the daemon has attached and in what they check, so the set-up lives here once:

    register_modules(conn, now=now)
    site = start_bridge(tmp_path, virtual_module, node={"interval": 10}, bridge={})
    daemon = Daemon(site_config(db_path, site.bridge, sync=...), attach_points=...).start()
    site.start_node()   # after the daemon, so that the node's first uplink finds the edge listening
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge import registry
from edge.config import from_dict
from edge.sim import VirtualModule
from tests.firmware import modules as firmware

__all__ = ["NODE_ID", "VirtualSite", "register_modules", "site_config", "start_bridge", "stored_counts"]

# The ids and keys baked into the modules' config files (tests.firmware.modules' defaults).
NODE_ID, NODE_KEY = firmware.NODE_ID, firmware.NODE_KEY
BRIDGE_ID, BRIDGE_KEY = firmware.BRIDGE_ID, firmware.BRIDGE_KEY


def register_modules(
    conn, *, now: float, node: Mapping[str, Any] | None = None, bridge: Mapping[str, Any] | None = None
) -> None:
    """Register the virtual node and bridge with their keys; ``node``/``bridge``: more add_device fields."""
    registry.add_device(conn, NODE_ID, key=NODE_KEY, actor="test", now=now, **(node or {}))
    registry.add_device(
        conn, BRIDGE_ID, key=BRIDGE_KEY, role="bridge", actor="test", now=now, **(bridge or {})
    )


@dataclass
class VirtualSite:
    node_dir: Path  # the node's working directory; its config.json shows what a downlink changed
    bridge: VirtualModule
    _start: Callable[..., VirtualModule]  # the virtual_module fixture that owns (and kills) the modules

    def start_node(self) -> VirtualModule:
        return self._start("main.py", ["config.json"], cwd=self.node_dir, name="node")


def start_bridge(
    tmp_path: Path,
    virtual_module: Callable[..., VirtualModule],
    *,
    node: Mapping[str, Any],
    bridge: Mapping[str, Any],
) -> VirtualSite:
    """Write both modules' config.json (``node``/``bridge`` override tests.firmware.modules' defaults),
    start the bridge and return the site; the node is started later with ``start_node``."""
    node_port, bridge_port = firmware.free_udp_ports(2)
    node_dir = firmware.module_dir(tmp_path, "node", **firmware.node_config(node_port, bridge_port, **node))
    bridge_dir = firmware.module_dir(
        tmp_path, "bridge", **firmware.bridge_config(bridge_port, node_port, **bridge)
    )
    running_bridge = virtual_module("main.py", ["config.json"], cwd=bridge_dir, name="bridge")
    return VirtualSite(node_dir, running_bridge, virtual_module)


def stored_counts(conn, device_id: str, port: int | None = None) -> Counter[int]:
    """How many times the edge's store holds each frame counter of ``device_id`` (on ``port``, if given):
    "stored once" is every count being 1. The one place the tests read the store's readings for that,
    so a change of the store's tables is one change here."""
    sql = "SELECT fcnt, count(*) FROM reading_list WHERE device_id = ?"
    args: tuple = (device_id,)
    if port is not None:
        sql += " AND port = ?"
        args += (port,)
    return Counter({fcnt: n for fcnt, n in conn.execute(sql + " GROUP BY fcnt", args)})


def site_config(
    db_path: str | Path, bridge: VirtualModule, *, edge: Mapping[str, Any] | None = None, **sections
):
    """The daemon's configuration for the site: its database, the bridge's pty as the only link port
    (no discovery, so it never opens another serial port), no metrics HTTP server; ``sections`` add or
    replace top-level sections ("rules", "sync", "webui" ...). The environment is ignored."""
    return from_dict(
        {
            "edge": {"db": str(db_path), **(edge or {})},
            "link": {"ports": [bridge.port], "discover": False},
            "http": {"enabled": False},
            **sections,
        },
        env={},
    )
