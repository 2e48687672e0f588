"""Waiting for a module's HELLO on its serial link after a reset (docs/protocol.md section 4)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import serial

from edge.errors import ProvisioningError
from edge.link.frame import Deframer, FrameType


def wait_for_hello(
    port: str,
    device_id: str,
    *,
    timeout: float,
    baudrate: int = 115200,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """The HELLO payload of ``device_id`` on ``port``; ProvisioningError('hello') after ``timeout``.

    The port may vanish for a moment while a board resets (USB re-enumeration), so
    opening is retried until the deadline too. HELLOs from another id (a module that
    still runs old firmware) are noted in the error.
    """
    deadline = clock() + timeout
    others: set[str] = set()
    last_error = ""
    while clock() < deadline:
        try:
            link = serial.Serial(port, baudrate, timeout=0.1, exclusive=True)
        except (serial.SerialException, OSError) as exc:
            last_error = str(exc)
            time.sleep(0.1)
            continue
        try:
            deframer = Deframer()
            while clock() < deadline:
                for frame in deframer.feed(link.read(512)):
                    if frame.type != FrameType.HELLO:
                        continue
                    try:
                        hello = json.loads(frame.payload.decode("utf-8"))
                    except (UnicodeDecodeError, ValueError):
                        continue
                    if hello.get("id") == device_id:
                        return hello
                    others.add(str(hello.get("id")))
        except (serial.SerialException, OSError) as exc:
            last_error = str(exc)  # unplugged while resetting: open again
        finally:
            link.close()
    detail = f"; heard HELLO from {', '.join(sorted(others))} instead" if others else ""
    detail += f"; last port error: {last_error}" if last_error and not others else ""
    raise ProvisioningError("hello", f"no HELLO from {device_id} on {port} within {timeout:g} s{detail}")
