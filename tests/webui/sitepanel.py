"""A virtual site (the real firmware on a bridge and a node) in front of the real daemon with the
panel running inside it: what the browser tests of a live site share."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

from edge.daemon import Daemon
from tests.sitekit import NODE_ID, VirtualSite, site_config, start_bridge

SCALE = 5  # module seconds per real second: a 10 s interval is an uplink every 2 s


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def newest_reading(reader):
    """The node's newest sensor reading (edge.store.readings.Reading), or None."""
    found = reader.newest(NODE_ID, limit=1, ports=(1,))
    return found[0] if found else None


@contextlib.contextmanager
def panel_site(tmp_path, virtual_module, db_path) -> Iterator[tuple[VirtualSite, str]]:
    """The bridge booted (the node is started by the test, ``site.start_node()``) and the daemon
    serving the panel on a free loopback port; yields (site, the panel's base URL)."""
    timing = {"time_scale": SCALE, "rx_window": 3}
    site = start_bridge(
        tmp_path,
        virtual_module,
        node={"interval": 10, "trace": False, **timing},
        bridge={"status_every": 3600, **timing},
    )
    port = free_tcp_port()
    config = site_config(db_path, site.bridge, webui={"host": "127.0.0.1", "port": port})
    daemon = Daemon(config, attach_points=("webui.service:attach",)).start()
    try:
        yield site, f"http://127.0.0.1:{port}"
    finally:
        daemon.stop()
