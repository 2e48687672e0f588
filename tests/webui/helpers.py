"""Putting data into a panel's database the way the edge does (real ingest path), and driving forms."""

from __future__ import annotations

import contextlib
import re
import struct
import time

from argon2 import PasswordHasher

from edge import registry
from edge.codecs import lpp
from edge.ingest.process import handle_uplink
from edge.radio import AckResult, build_serial_uplink
from edge.store import connect, transaction
from edge.store.numbers import Numbers
from tests.edge.edge_module_peer import Node, activate
from webui import accounts

PASSWORD = "correct horse battery"
BRIDGE = "b0b0b0b0b0b0b0b0"
# Test users get a cheap argon2id cost (the cost is stored in the hash, so the panel's verify works
# unchanged); the first-run and settings tests exercise the real default cost.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def make_user(db_path, username: str, role: str, password: str = PASSWORD) -> int:
    conn = connect(db_path)
    try:
        with transaction(conn):
            return accounts.create_user(conn, username, password, role, now=time.time(), hasher=FAST_HASHER)
    finally:
        conn.close()


def make_token(db_path, username: str, name: str = "test") -> str:
    conn = connect(db_path)
    try:
        with transaction(conn):
            user = accounts.find_user(conn, username)
            return accounts.create_token(conn, user["id"], name, now=time.time())[1]
    finally:
        conn.close()


def add_device(
    db_path,
    device_id: str,
    *,
    name: str = "",
    key: bytes = bytes(range(16)),
    interval_s: int = 60,
    now: float | None = None,
) -> bytes:
    conn = connect(db_path)
    try:
        return registry.add_device(
            conn,
            device_id,
            key=key,
            name=name,
            interval_s=interval_s,
            actor="test",
            now=time.time() if now is None else now,
        )
    finally:
        conn.close()


class Module:
    """A registered device whose LoRaWAN uplinks go through edge.ingest (MIC, replay check, store).

    It is activated by personalisation (ABP, tests/edge/edge_module_peer.py: no join to run) on first
    use; a second Module of the same device carries on with that session's counter."""

    def __init__(self, db_path, device_id: str, key: bytes = bytes(range(16))):
        self.db_path, self.device_id = db_path, device_id
        self.numbers = Numbers()
        self._batch = None
        conn = connect(db_path)
        try:
            (self.node,) = activate(conn, [Node(device_id, key)])
            (last,) = conn.execute(
                "SELECT fcnt_up FROM lorawan_sessions WHERE device_id = ?", (device_id,)
            ).fetchone()
        finally:
            conn.close()
        self.fcnt = max(last, 0)  # the first uplink is FCnt 1, as a v1 node's first counter was

    @contextlib.contextmanager
    def batch(self):
        """Frames sent inside share one transaction (seeding history quickly)."""
        conn = connect(self.db_path)
        try:
            with transaction(conn):
                self._batch = conn
                yield self
        finally:
            self._batch = None
            conn.close()

    def _send(self, port: int, payload: bytes, *, rssi: int, snr: float, now: float | None):
        self.fcnt += 1
        uplink = build_serial_uplink(self.node.frame(self.fcnt, port, payload), rssi=rssi, snr=snr)
        at = time.time() if now is None else now
        if (
            self._batch is not None
        ):  # inside batch(): one commit for many frames, like the daemon's group commit
            outcome = handle_uplink(self._batch, uplink, bridge_id=BRIDGE, numbers=self.numbers, now=at)
        else:
            conn = connect(self.db_path)
            try:
                with transaction(conn):
                    outcome = handle_uplink(conn, uplink, bridge_id=BRIDGE, numbers=self.numbers, now=at)
            finally:
                conn.close()
        assert outcome.result in (AckResult.STORED, AckResult.DUPLICATE), outcome.detail
        return outcome

    def reading(
        self,
        temperature: float = 21.5,
        humidity: float = 40.0,
        battery: float = 3.7,
        *,
        rssi: int = -80,
        snr: float = 7.25,
        now: float | None = None,
    ):
        payload = lpp.encode(
            [
                (1, "temperature", temperature),
                (2, "humidity", humidity),
                (3, "analog_input", battery),
            ]
        )
        return self._send(1, payload, rssi=rssi, snr=snr, now=now)

    def downlink_result(self, dl_id: int, result: int = 0, *, now: float | None = None):
        return self._send(2, struct.pack(">HB", dl_id & 0xFFFF, result), rssi=-80, snr=7.0, now=now)


def raise_alarm(
    db_path,
    *,
    device_id: str | None,
    message: str = "temperature above 8 °C",
    rule: str = "cold-room",
    severity: str = "critical",
    value: float | None = 9.1,
) -> int:
    from edge import alarms

    conn = connect(db_path)
    try:
        return alarms.raise_alarm(
            conn,
            rule=rule,
            device_id=device_id,
            severity=severity,
            message=message,
            value=value,
            now=time.time(),
        )
    finally:
        conn.close()


def csrf_token(client, url: str = "/") -> str:
    page = client.get(url)
    match = CSRF_RE.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {url} ({page.status_code})"
    return match.group(1)


def login(client, username: str, password: str = PASSWORD):
    token = csrf_token(client, "/login")
    return client.post("/login", data={"csrf_token": token, "username": username, "password": password})


def add_panel_rule(db_path, definition: dict | None = None, *, actor: str = "test") -> int:
    """A rule as an admin would save it in the panel (edge.rules.save_rule); returns its id."""
    from edge import rules

    conn = connect(db_path)
    try:
        return rules.save_rule(
            conn,
            definition
            or {"name": "cold room warm", "kind": "threshold", "metric": "temperature", "above": 8.0},
            actor=actor,
            now=time.time(),
        )
    finally:
        conn.close()
