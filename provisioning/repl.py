"""Talking to a module's MicroPython raw REPL through mpremote's serial transport.

We always *resume*: enter the raw REPL without a soft reset. A soft reset would
restart main.py on a board and ends the process of a virtual module (unix port).
Files are written to ``<path>.tmp`` and renamed, so a cable pulled mid-copy leaves the
old file or the new one, never half of one.
"""

from __future__ import annotations

import ast
import contextlib
import io
from typing import Self

import serial
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from edge.errors import ProvisioningError

WRITE_CHUNK = 512

# Runs on the module: sha256 of each path, None where the file is missing.
_HASH_SCRIPT = """
import hashlib, binascii
def _fp_hash(paths):
    out = {}
    buf = bytearray(512)
    mv = memoryview(buf)
    for p in paths:
        try:
            f = open(p, 'rb')
        except OSError:
            out[p] = None
            continue
        h = hashlib.sha256()
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
        f.close()
        out[p] = binascii.hexlify(h.digest()).decode()
    return out
"""


def _open_error(port: str, baudrate: int) -> str:
    """Why pyserial cannot open ``port`` (mpremote only says "failed to access")."""
    try:
        serial.Serial(port, baudrate, exclusive=True).close()
    except (serial.SerialException, OSError) as exc:
        text = str(exc)
        if "lock" in text.lower():
            text += " (another program holds the port: stop `fieldpost run` or remove it from [link] ports)"
        return text
    return ""


class ModuleRepl:
    """An open raw-REPL session with one module. Use as a context manager."""

    def __init__(self, port: str, *, baudrate: int = 115200, timeout: float = 10.0):
        self.port = port
        quiet = io.StringIO()  # mpremote prints what it read when the REPL does not answer
        try:
            with contextlib.redirect_stdout(quiet):
                # A read timeout, so that a silent pty cannot block mpremote's reads forever.
                self._t = SerialTransport(port, baudrate=baudrate, timeout=1.0)
        except (TransportError, OSError) as exc:
            raise ProvisioningError(
                "port", f"cannot open {port}: {_open_error(port, baudrate) or exc}"
            ) from None
        try:
            with contextlib.redirect_stdout(quiet):
                self._t.enter_raw_repl(soft_reset=False, timeout_overall=timeout)
        except (TransportError, OSError) as exc:
            self._t.close()
            raise ProvisioningError(
                "repl",
                f"no MicroPython REPL answered on {port} within {timeout:g} s ({exc}); "
                "is the module powered, on this port, and not held by another program?",
            ) from None
        self._hash_ready = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._t.exit_raw_repl()
        except (TransportError, OSError):
            pass
        try:
            self._t.close()
        except OSError:
            pass

    def exec(self, code: str, *, step: str = "repl") -> str:
        try:
            return self._t.exec(code).decode("utf-8", "replace")
        except TransportExecError as exc:
            raise ProvisioningError(
                step, f"module raised: {exc.error_output.strip().splitlines()[-1]}"
            ) from None
        except (TransportError, OSError) as exc:
            raise ProvisioningError(step, f"lost the module on {self.port}: {exc}") from None

    def eval(self, expression: str, *, step: str = "repl"):
        text = self.exec(f"print(repr({expression}))", step=step)
        return ast.literal_eval(text.strip())

    def info(self) -> dict:
        """What the interpreter says about itself (platform, mpy version) and its sys.path."""
        self.exec("import sys")
        return {
            "platform": self.eval("sys.platform"),
            "mpy": self.eval("getattr(sys.implementation, '_mpy', 0) & 0xff"),
            "path": self.eval("sys.path"),
        }

    def hashes(self, paths: list[str]) -> dict[str, str | None]:
        if not self._hash_ready:
            self.exec(_HASH_SCRIPT, step="hash")
            self._hash_ready = True
        result: dict[str, str | None] = {}
        for i in range(0, len(paths), 16):  # keep each answer short
            result.update(self.eval(f"_fp_hash({paths[i : i + 16]!r})", step="hash"))
        return result

    def makedirs(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        prefix = "/" if path.startswith("/") else ""
        self.exec("import os", step="copy")
        for part in parts:
            prefix = f"{prefix}{part}" if prefix in ("", "/") else f"{prefix}/{part}"
            self.exec(f"try:\n os.mkdir({prefix!r})\nexcept OSError:\n pass", step="copy")

    def write(self, path: str, data: bytes) -> None:
        tmp = path + ".tmp"
        self.exec(f"f=open({tmp!r},'wb')\nw=f.write", step="copy")
        for i in range(0, len(data), WRITE_CHUNK):
            self.exec(f"w({data[i : i + WRITE_CHUNK]!r})", step="copy")
        # FAT (older ESP32 builds) will not rename over an existing file; LittleFS and unix will.
        self.exec(
            f"f.close()\nimport os\ntry:\n os.rename({tmp!r},{path!r})\nexcept OSError:\n"
            f" os.remove({path!r})\n os.rename({tmp!r},{path!r})",
            step="copy",
        )

    def read(self, path: str) -> bytes | None:
        try:
            return bytes(self._t.fs_readfile(path, chunk_size=WRITE_CHUNK))
        except OSError:
            return None
        except TransportError as exc:
            raise ProvisioningError("read", f"lost the module on {self.port}: {exc}") from None

    def listdir(self, path: str) -> list[str]:
        """Names in ``path`` on the module; empty when it does not exist."""
        try:
            return [entry.name for entry in self._t.fs_listdir(path)]
        except OSError:
            return []
        except TransportError as exc:
            raise ProvisioningError("read", f"lost the module on {self.port}: {exc}") from None

    def remove(self, path: str) -> None:
        self.exec(f"import os\ntry:\n os.remove({path!r})\nexcept OSError:\n pass", step="copy")

    def reset(self) -> None:
        """machine.reset() on a board; the REPL session ends with it."""
        try:
            self._t.exec_raw_no_follow("import machine\nmachine.reset()")
        except (TransportError, OSError):
            pass  # the board went away mid-answer: that is the reset
