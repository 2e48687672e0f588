"""One `fieldpost provision module` run in its own process, for the offline and kill tests:

    python provision_run.py SPEC.json

SPEC: {"port", "board", "role", "db", "cache", "settings": {...}, "kill": [stage, nth] or null,
       "kill_exec": n or null, "network_log": path}

- ``kill``: the process SIGKILLs itself when provisioning reports ``stage`` for the ``nth`` time, that
  is right before that step acts (as a pulled cable or a killed terminal would stop it);
- ``kill_exec``: SIGKILLs itself in the middle of the ``n``-th command sent to the module's REPL (half
  of it sent), e.g. inside a file's chunks;
- every attempt to use the network (socket connect/sendto/getaddrinfo, urllib) is written to
  ``network_log`` and refused: provisioning must not need it.

Prints the provisioning result as JSON on success. The module is reset with the BlankModule's
restart, so no reset here: the test does it."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

SPEC = json.loads(Path(sys.argv[1]).read_text())
NETWORK_EVENTS = (
    "socket.connect",
    "socket.sendto",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "urllib.Request",
)


def _audit(event, args):
    if event in NETWORK_EVENTS:
        with open(SPEC["network_log"], "a") as f:
            f.write(json.dumps([event, repr(args)]) + "\n")
        raise OSError(f"provisioning tried the network: {event} {args!r}")


sys.addaudithook(_audit)

from provisioning.module import ModuleSpec, provision_module  # noqa: E402
from provisioning.repl import ModuleRepl  # noqa: E402

seen: dict[str, int] = {}


def progress(stage: str, detail: str) -> None:
    seen[stage] = seen.get(stage, 0) + 1
    kill = SPEC.get("kill")
    if kill and stage == kill[0] and seen[stage] == kill[1]:
        os.kill(os.getpid(), signal.SIGKILL)


if SPEC.get("kill_exec"):
    calls = {"n": 0}
    original = ModuleRepl.exec

    def exec_then_die(self, code, *, step="repl"):
        calls["n"] += 1
        if calls["n"] == SPEC["kill_exec"]:
            raw = code.encode()
            self._t.serial.write(raw[: len(raw) // 2])  # half a command on the wire
            self._t.serial.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, code, step=step)

    ModuleRepl.exec = exec_then_die

spec = ModuleSpec(
    port=SPEC["port"], board=SPEC["board"], role=SPEC["role"], settings=SPEC.get("settings", {})
)
result = provision_module(
    spec,
    db_path=Path(SPEC["db"]),
    cache_dir=Path(SPEC["cache"]),
    reset=None,
    repl_timeout=10,
    progress=progress,
)
print(
    json.dumps(
        {
            "device_id": result.device_id,
            "copied": result.copied,
            "registration": result.registration,
            "resumed": result.resumed,
            "driver": result.driver,
            "stages": seen,
        }
    )
)
