"""A stand-in cloud for ``make demo``: a local Mosquitto and a client that shows what arrives.

    cloud = DemoCloud(workdir, out=print).start()   # None (and a note) without mosquitto
    config["sync"] = cloud.sync_section(site)       # plaintext is allowed: the broker is loopback
    ...
    cloud.stop()

The broker listens on a free 127.0.0.1 port with its own config, log and persistence
in ``workdir``; the printer subscribes to every ``up`` topic and prints one line per
batch (device, how many messages, their ids), so a viewer sees readings leave the edge.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.sync.encoding import decode_envelope

MOSQUITTO = "/usr/sbin/mosquitto"


class DemoCloud:
    def __init__(
        self,
        workdir: str | Path,
        *,
        out: Callable[[str], None] = print,
        prefix: str = "fieldpost",
    ):
        self.workdir = Path(workdir)
        self.out = out
        self.prefix = prefix
        self.port = 0
        self.received = 0
        self._proc: subprocess.Popen | None = None
        self._client: mqtt.Client | None = None

    def start(self) -> DemoCloud | None:
        binary = shutil.which("mosquitto") or (MOSQUITTO if Path(MOSQUITTO).exists() else None)
        if binary is None:
            self.out("cloud: mosquitto is not installed (Debian: apt install mosquitto); sync stays offline")
            return None
        self.workdir.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.workdir}/\nlog_dest file {self.workdir / 'mosquitto.log'}\n"
            + ("user root\n" if _is_root() else "")
        )
        self._proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal goes to the demo, which stops the broker last
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    self.stop()
                    self.out("cloud: mosquitto did not start; sync stays offline")
                    return None
                time.sleep(0.05)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="fieldpost-demo-cloud",
            clean_session=False,
        )
        client.on_connect = lambda c, *_: c.subscribe(f"{self.prefix}/+/+/up", qos=1)
        client.on_message = self._show
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        self._client = client
        self.out(f"cloud: local Mosquitto on 127.0.0.1:{self.port} (the edge syncs to it)")
        return self

    def sync_section(self, site: str = "demo") -> dict[str, Any]:
        return {
            "site": site,
            "batch_max_wait_s": 1.0,
            "mqtt": {"host": "127.0.0.1", "port": self.port, "tls": {"enabled": False}},
        }

    def _show(self, client, userdata, message) -> None:
        try:
            doc = decode_envelope(message.payload)
        except (ValueError, OSError):  # not gzip / JSON / CBOR
            self.out(f"cloud: {message.topic}: {len(message.payload)} bytes (not a Fieldpost batch)")
            return
        ids = [m["id"] for m in doc.get("messages", [])]
        self.received += len(ids)
        shown = ", ".join(ids[:3]) + (f" ... (+{len(ids) - 3})" if len(ids) > 3 else "")
        self.out(
            f"cloud <- {doc.get('device') or 'site'}: {len(ids)} message(s), {len(message.payload)} bytes: {shown}"
        )

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
