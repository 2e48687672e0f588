"""Virtual modules for provisioning: a *blank* module is MicroPython's bare REPL on a pty.

edge.sim.VirtualModule runs the REPL with its stdio on the pty when it has no entry file;
this wraps it with what a board has and the unix port lacks: a flash directory and a
reset that boots main.py. Used by tests/provisioning and usable from the demo.
"""

from __future__ import annotations

from pathlib import Path

from edge.sim import VirtualModule


class BlankModule:
    """A module with nothing on its flash: the unix port's interactive REPL, stdio on a pty.

    Its flash is ``flash`` (the process's cwd; ``lib/`` on its path as /lib is on a board's, where
    the bundle puts the radio driver).
    The unix port has no real machine.reset(): ``reset`` stands in for it by restarting the
    process with the main.py that provisioning copied, on the same pty, as a board reboots.
    """

    def __init__(self, flash: Path):
        self.flash = flash
        flash.mkdir(parents=True, exist_ok=True)
        self.vm = VirtualModule(None, firmware_dir=flash, cwd=flash, name="blank")
        self.resets = 0

    @property
    def port(self) -> str:
        if self.vm.port is None:
            raise RuntimeError(f"{self.vm.name}: not started, so it has no port")
        return self.vm.port

    def start(self) -> BlankModule:
        self.vm.start()
        return self

    def reset(self, repl=None) -> None:
        if repl is not None:
            repl.close()
        self.vm.kill()
        self.vm.entry = self.flash / "main.py"
        self.vm.start()
        self.resets += 1

    def back_to_repl(self) -> None:
        """Power-cycle into the REPL again (as an operator would with a board held in its bootloader)."""
        self.vm.kill()
        self.vm.entry = None
        self.vm.start()

    def close(self) -> None:
        self.vm.close()
