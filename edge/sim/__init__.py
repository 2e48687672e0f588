"""Virtual modules for the demo and the tests: real firmware, MicroPython unix port, ptys."""

from edge.sim.module import (
    FIRMWARE_DIR,
    SimError,
    VirtualModule,
    find_micropython,
    open_raw_pty,
)
from edge.sim.proxy import CorruptingProxy

__all__ = [
    "FIRMWARE_DIR",
    "CorruptingProxy",
    "SimError",
    "VirtualModule",
    "find_micropython",
    "open_raw_pty",
]
