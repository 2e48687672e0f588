"""The installed ``fieldpost run`` in a test root, started as its unit starts it, with a bridge module on a pty.

The bridge is the edge tests' CPython module peer (tests/edge/edge_module_peer.py); its pty
stands in for /dev/ttyUSB0 (root:dialout 0660, as udev makes a USB serial port). The test
listens on the NOTIFY_SOCKET, as systemd would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request

from debroot import DebRoot, free_port
from edge_module_peer import ModulePeer, Node  # tests/edge, put on sys.path by conftest.py

from tests.notify_socket import NotifyListener

NODE = "0000000000000a01"
BRIDGE = "00000000000000b0"
KEY = bytes(range(16))


def node_add_command() -> list[str]:
    """`fieldpost devices add` for the peer's node: its key and its ABP session (a LoRaWAN node; the edge
    refuses v1 frames from radio nodes by default)."""
    return ["fieldpost", "devices", "add", NODE, "--key", KEY.hex(), *Node(NODE, KEY).abp_options()]


WATCHDOG_USEC = 1_000_000  # the unit says 30 s; 1 s shows the pings within a test


class InstalledDaemon:
    def __init__(self, root: DebRoot, *, next_fcnt: int = 1, register: bool = True):
        self.root = root
        self.next_fcnt = next_fcnt
        self.register = register
        self.http_port = free_port()
        self.peer: ModulePeer | None = None
        self.proc: subprocess.Popen | None = None
        self.listener: NotifyListener | None = None
        self.output = ""

    def __enter__(self) -> InstalledDaemon:
        root = self.root
        # Registered with the installed command, as the service's user (what `fieldpost provision` does).
        node = Node(NODE, KEY, next_fcnt=self.next_fcnt)
        if self.register:
            root.run(*node_add_command(), user="fieldpost")
        self.peer = ModulePeer(BRIDGE, [node]).start()
        os.chown(self.peer.path, 0, root.gid("dialout"))
        os.chmod(self.peer.path, 0o660)
        root.set_config_value("link", "ports", json.dumps([self.peer.path]))
        root.set_config_value("link", "discover", "false")
        root.set_config_value("http", "port", str(self.http_port))
        root.set_config_value("webui", "port", str(free_port()))
        # abstract: shared through the network namespace, so the chrooted daemon reaches it
        self.listener = NotifyListener.abstract()
        env = {"NOTIFY_SOCKET": self.listener.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        self.proc = root.start_like_unit(env)
        return self

    def ready(self, timeout: float = 60):
        try:
            return self.listener.wait_for("READY=1", timeout)
        except AssertionError:
            raise AssertionError(f"no READY=1; the daemon said:\n{self.stop()}") from None

    def store_reading(self) -> int:
        fcnt = self.peer.add_reading(NODE)
        deadline = time.monotonic() + 20
        while (NODE, fcnt) not in self.peer.log.acked:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"reading {fcnt} was not ACKed; the daemon said:\n{self.stop()}")
            time.sleep(0.02)
        return fcnt

    def health(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=5) as answer:
            return json.loads(answer.read())

    def exited(self, timeout: float = 60) -> str:
        """Wait for the daemon to end by itself (a start-up failure); returns what it printed."""
        self.output = self.proc.communicate(timeout=timeout)[0] or ""
        return self.output

    def stop(self) -> str:
        """SIGTERM, as systemctl stop sends it; returns everything the daemon printed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        if self.proc is not None:
            try:
                self.output = self.proc.communicate(timeout=40)[0] or ""
            except ValueError:  # already read
                pass
        return self.output

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.peer is not None:
            self.peer.close()
        if self.listener is not None:
            self.listener.close()
