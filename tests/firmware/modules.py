"""Virtual node and bridge modules for the firmware tests: config files, air ports, traces."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from tests.firmware import air
from tests.firmware.conftest import run_mp

NODE_ID = "0123456789abcdef"
NODE_KEY = bytes(range(1, 17))
BRIDGE_ID = "fedcba9876543210"
BRIDGE_KEY = bytes(range(201, 217))
# SF7 (EU868 DR5), so the integration tests spend little airtime; the day test uses SF12.
# A datagram on the loopback air as a module at SF7 sends it (tests/firmware/air.py).
AIR_SF7 = air.SF7


def free_udp_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def module_dir(root: Path, name: str, **cfg) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def node_config(node_port: int, bridge_port: int, **over) -> dict:
    cfg = {
        "id": NODE_ID,
        "key": NODE_KEY.hex(),
        "role": "node",
        "dr": 5,
        "interval": 10,
        "time_scale": 20,
        "rx_window": 3,
        "retry_base": 1,
        "retry_max": 8,
        "status_every": 3600,
        "trace": True,
        "seed": 7,
        "air": {"port": node_port, "peers": [bridge_port], "rssi": -97, "snr": 6.5, "seed": 11},
    }
    cfg.update(over)
    return cfg


def bridge_config(bridge_port: int, node_port: int, **over) -> dict:
    cfg = {
        "id": BRIDGE_ID,
        "key": BRIDGE_KEY.hex(),
        "role": "bridge",
        "dr": 5,
        "interval": 60,
        "time_scale": 20,
        "rx_window": 3,
        "status_every": 10,
        "seed": 3,
        "air": {"port": bridge_port, "peers": [node_port], "rssi": -97, "snr": 6.5, "seed": 5},
    }
    cfg.update(over)
    return cfg


# -X heapsize for a virtual module of a board: twice the board's RAM. The unix port is 64-bit (objects
# and pointers twice the size of the boards' 32-bit ones) and the emulated radio (fp/hal/emu, ~50 KB
# there) lives in the same heap; measured on this port, a heltec_v2 bridge needs about 200K of its
# 220K. A rough bound that catches gross growth (e.g. both chip drivers loaded), not a board's exact RAM.
HEAP_FACTOR = 2


def virtual_bundle(root: Path, board: str) -> Path:
    """The board's firmware bundle as mpy-cross builds it for the board (its radio driver only), plus
    the unix-only files: what a virtual module of that board runs (edge.tools.build_firmware)."""
    from edge.tools import build_firmware

    profile = build_firmware.load_profile(board)
    out = root / f"{board}-virtual"
    if not (out / "manifest.json").exists():
        build_firmware.build_bundle(out, profile.get("arch"), profile=profile, virtual=True)
    return out


def board_heap(board: str) -> str:
    """-X heapsize for a virtual module of ``board`` (see HEAP_FACTOR)."""
    from edge.tools import build_firmware

    return f"{build_firmware.load_profile(board)['heap_kb'] * HEAP_FACTOR}K"


_TRACE = re.compile(r"^T (\w+) (.*)$")


def radio_complaints(vm) -> list[str]:
    """Lines where an emulated chip logged invalid use (notes are harmless by definition)."""
    return [line for line in vm.output if line.startswith("radio sx12") and "note:" not in line]


def trace(vm, event: str) -> list[str]:
    out = []
    for line in list(vm.output):
        m = _TRACE.match(line)
        if m and m.group(1) == event:
            out.append(m.group(2))
    return out


def taken(vm) -> list[int]:
    return [int(v) for v in trace(vm, "taken")]


def journal_pending(module: Path) -> list[int]:
    """Open the module's journal with the firmware's own Journal, under micropython."""
    out = run_mp("journal_pending.py", cwd=module)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])
