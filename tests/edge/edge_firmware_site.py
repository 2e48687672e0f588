"""Real-firmware virtual modules for the edge tests: module directories, air ports, traces.

A thin layer over tests.firmware.modules (the firmware tests' own config files and traces), for a
site of several nodes with their own ids and keys behind one bridge."""

from __future__ import annotations

from tests.firmware import modules as firmware

free_udp_ports = firmware.free_udp_ports


def module_dir(root, name, cfg):
    return firmware.module_dir(root, name, **cfg)


def module_config(dev_id, key, role, port, peers, **over):
    """A firmware config.json: SF7, time running 20x, a trace of what the node does."""
    air = {"port": port, "peers": peers, "rssi": -97, "snr": 6.5, "seed": port + 1}
    return firmware.node_config(
        port, peers[0], id=dev_id, key=key.hex(), role=role, seed=port, air=air, **over
    )


def traced(vm, event: str) -> set[int]:
    """The fcnts a node traced for ``event`` ('taken', 'acked' ...): what the firmware logged."""
    return {int(v) for v in firmware.trace(vm, event)}


def start_module(virtual_module, root, dev_id, key, role, port, peers, *, name=None, **over):
    """Write a module's config.json (in ``root/<bridge or dev_id>``) and boot it under MicroPython."""
    cwd = module_dir(
        root, "bridge" if role == "bridge" else dev_id, module_config(dev_id, key, role, port, peers, **over)
    )
    return virtual_module("main.py", ["config.json"], name=name or role, cwd=cwd)
