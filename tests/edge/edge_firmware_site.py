"""Real-firmware virtual modules for the edge tests: module directories, air ports, traces."""

from __future__ import annotations

import json
import re
import socket

TRACE = re.compile(r"^T (\w+) (.*)$")


def free_udp_ports(n):
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def module_dir(root, name, cfg):
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def module_config(dev_id, key, role, port, peers, **over):
    """A firmware config.json: SF7, time running 20x, a trace of what the node does."""
    cfg = {
        "id": dev_id,
        "key": key.hex(),
        "role": role,
        "dr": 5,
        "interval": 10,
        "time_scale": 20,
        "rx_window": 3,
        "retry_base": 1,
        "retry_max": 8,
        "status_every": 3600,
        "trace": True,
        "seed": port,
        "air": {"port": port, "peers": peers, "rssi": -97, "snr": 6.5, "seed": port + 1},
    }
    cfg.update(over)
    return cfg


def traced(vm, event: str) -> set[int]:
    """The fcnts a node traced for ``event`` ('taken', 'acked' ...): what the firmware logged."""
    out = set()
    for line in list(vm.output):
        m = TRACE.match(line)
        if m and m.group(1) == event:
            out.add(int(m.group(2)))
    return out
