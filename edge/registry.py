"""The device registry: ids and keys, quarantine of unknown devices, adoption.

Library functions over a connection; the CLI and the panel are thin layers on top.
Functions that change things take ``actor`` and write audit_log in the same
transaction. A new key (add, re-add, rotate, adopt) resets the replay floor
(last_fcnt = -1): that is the only way a device's frame counter may start over.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.codecs import available as available_codecs
from edge.errors import ValidationError
from edge.lorawan import server as lorawan_server
from edge.radio import is_device_id
from edge.store import cursor, numbers, readings, transaction

KEY_SIZE = 16
ROLES = ("node", "bridge")


def new_device_id() -> str:
    return secrets.token_bytes(8).hex()


def new_key() -> bytes:
    return secrets.token_bytes(KEY_SIZE)


def parse_key(text: str) -> bytes:
    return _hex("key", text, KEY_SIZE)


@dataclass(frozen=True)
class AbpSession:
    """An ABP device's session as the operator gives it (the node's config.json holds the same)."""

    devaddr: int
    nwk_skey: bytes
    app_skey: bytes

    def __repr__(self) -> str:  # never the keys, in a log line or a traceback
        return f"AbpSession(devaddr={self.devaddr:08x})"


def _hex(field: str, text: str, size: int) -> bytes:
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        raise ValidationError(field, "is not hex") from None
    if len(value) != size:
        raise ValidationError(field, f"is {len(value)} bytes, expected {size} ({2 * size} hex digits)")
    return value


def parse_abp(devaddr: str, nwk_skey: str, app_skey: str, *, net_id: int) -> AbpSession:
    """An ABP session from its hex texts; a ValidationError names the field that is wrong.

    The DevAddr's top 7 bits (its NwkID) must be the low 7 bits of the edge's NetID, as for the
    DevAddrs a join gives out: the edge then owns every address it matches uplinks by."""
    addr = int.from_bytes(_hex("devaddr", devaddr, 4), "big")
    if addr >> 25 != net_id & 0x7F:
        raise ValidationError(
            "devaddr",
            f"{addr:08x} has NwkID {addr >> 25:#04x}, but [lorawan] net_id {net_id:#08x} gives NwkID"
            f" {net_id & 0x7F:#04x} (DevAddrs {(net_id & 0x7F) << 25:08x} .. {((net_id & 0x7F) << 25) | 0x1FFFFFF:08x})",
        )
    return AbpSession(addr, _hex("nwk_skey", nwk_skey, KEY_SIZE), _hex("app_skey", app_skey, KEY_SIZE))


def check_device_id(device_id: str) -> str:
    if not is_device_id(device_id):
        raise ValidationError("device_id", f"{device_id!r} is not 16 lower-case hex digits")
    return device_id


def audit(conn: sqlite3.Connection, *, actor: str, action: str, target: str | None, detail: dict, now: float):
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (now, actor, action, target, json.dumps(detail, separators=(",", ":"))),
    )


def add_device(
    conn: sqlite3.Connection,
    device_id: str,
    *,
    key: bytes | None = None,
    name: str = "",
    codec: str = "lpp",
    board: str = "",
    role: str = "node",
    interval_s: int = 300,
    abp: AbpSession | None = None,
    actor: str,
    now: float,
) -> bytes:
    """Register a device (or re-provision one: new key, replay floor reset); return its key.

    With ``abp`` the device also gets that session (ABP: no join), in the same transaction."""
    check_device_id(device_id)
    key = new_key() if key is None else key
    if len(key) != KEY_SIZE:
        raise ValidationError("key", f"is {len(key)} bytes, expected {KEY_SIZE}")
    if role not in ROLES:
        raise ValidationError("role", f"{role!r} is not one of {', '.join(ROLES)}")
    if codec not in available_codecs():
        raise ValidationError(
            "codec", f"{codec!r} is not installed; available: {', '.join(available_codecs())}"
        )
    if not 10 <= int(interval_s) <= 86400:
        raise ValidationError("interval_s", f"{interval_s} is outside 10 .. 86400")
    with transaction(conn):
        existed = conn.execute("SELECT 1 FROM devices WHERE id = ?", (device_id,)).fetchone() is not None
        if abp is not None:
            other = conn.execute(
                "SELECT device_id FROM lorawan_sessions WHERE devaddr = ? AND device_id != ?",
                (abp.devaddr, device_id),
            ).fetchone()
            if other is not None:
                raise ValidationError(
                    "devaddr", f"{abp.devaddr:08x} is already the session of device {other[0]}"
                )
        number = numbers.ensure(conn, device_id)  # the small integer its readings are stored under
        conn.execute(
            "INSERT INTO devices (id, name, key, codec, board, role, interval_s, created_at, last_fcnt)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, -1)"
            " ON CONFLICT (id) DO UPDATE SET key = excluded.key, name = excluded.name, codec = excluded.codec,"
            " board = excluded.board, role = excluded.role, interval_s = excluded.interval_s,"
            " last_fcnt = -1, key_rotated_at = ?, dev_nonce = -1",
            (device_id, name, key, codec, board, role, int(interval_s), now, now),
        )
        # a new AppKey: the LoRaWAN session (if any) is void, the device joins again
        conn.execute("DELETE FROM lorawan_sessions WHERE device_id = ?", (device_id,))
        conn.execute("DELETE FROM quarantine WHERE device_id = ?", (device_id,))
        detail: dict[str, Any] = {"name": name, "codec": codec, "board": board, "role": role}
        if abp is not None:
            lorawan_server.activate_abp(
                conn,
                device_id,
                devaddr=abp.devaddr,
                nwk_skey=abp.nwk_skey,
                app_skey=abp.app_skey,
                number=number,
                now=now,
            )
            # the DevAddr is an address, not a secret; the session keys never reach the audit log
            detail.update(activation="abp", devaddr=f"{abp.devaddr:08x}")
        audit(
            conn,
            actor=actor,
            action="device.reprovision" if existed else "device.add",
            target=device_id,
            detail=detail,
            now=now,
        )
    return key


def rotate_key(
    conn: sqlite3.Connection, device_id: str, *, key: bytes | None = None, actor: str, now: float
) -> bytes:
    """Give a registered device a new key; its frame counter may start over."""
    key = new_key() if key is None else key
    with transaction(conn):
        cur = conn.execute(
            "UPDATE devices SET key = ?, last_fcnt = -1, key_rotated_at = ?, dev_nonce = -1 WHERE id = ?",
            (key, now, device_id),
        )
        if cur.rowcount == 0:
            raise ValidationError("device_id", f"no registered device {device_id!r}")
        # a new AppKey voids the LoRaWAN session: the device joins again (its ids continue)
        conn.execute("DELETE FROM lorawan_sessions WHERE device_id = ?", (device_id,))
        audit(conn, actor=actor, action="device.rotate_key", target=device_id, detail={}, now=now)
    return key


def adopt(
    conn: sqlite3.Connection,
    device_id: str,
    *,
    key: bytes,
    name: str = "",
    codec: str = "lpp",
    actor: str,
    now: float,
) -> None:
    """Register a quarantined device with the key it was provisioned with."""
    if conn.execute("SELECT 1 FROM quarantine WHERE device_id = ?", (device_id,)).fetchone() is None:
        raise ValidationError("device_id", f"{device_id!r} is not in quarantine")
    add_device(conn, device_id, key=key, name=name, codec=codec, actor=actor, now=now)


def remove_device(
    conn: sqlite3.Connection, device_id: str, *, purge: bool = False, actor: str, now: float
) -> int:
    """Unregister a device; return how many of its readings were deleted.

    A device with stored readings is only removed with ``purge``, which deletes the readings
    the cloud already has; the ones it has not had yet stay until they are synced (then
    retention removes them), as every reading that was ACKed must reach the cloud.
    """
    with transaction(conn):
        if conn.execute("SELECT 1 FROM devices WHERE id = ?", (device_id,)).fetchone() is None:
            raise ValidationError("device_id", f"no registered device {device_id!r}")
        number = numbers.number_of(conn, device_id)
        low, high = readings.device_bounds(number) if number is not None else (0, -1)
        count = readings.count_between(conn, low, high)
        if count and not purge:
            raise ValidationError(
                "device_id", f"{device_id} has {count} stored readings; purge them to remove it"
            )
        if count:
            synced = cursor.synced_through(conn).get(number, low - 1)  # type: ignore[arg-type]
            count = readings.delete_between(conn, low, min(high, synced))
        conn.execute("DELETE FROM downlinks WHERE device_id = ?", (device_id,))
        conn.execute("DELETE FROM devices WHERE id = ?", (device_id,))
        audit(
            conn, actor=actor, action="device.remove", target=device_id, detail={"readings": count}, now=now
        )
    return count


def get_device(conn: sqlite3.Connection, device_id: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM devices WHERE id = ?", (device_id,)).fetchone()
    return None if row is None else dict(row)


def list_devices(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute("SELECT * FROM devices ORDER BY id")]


def note_unknown(
    conn: sqlite3.Connection,
    device_id: str,
    *,
    rssi: int | None,
    bridge: str | None,
    frame: bytes,
    now: float,
) -> None:
    """Record an uplink from an unregistered device in quarantine (inside the ingest transaction)."""
    conn.execute(
        "INSERT INTO quarantine (device_id, first_seen, last_seen, count, last_rssi, last_bridge, last_frame)"
        " VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen,"
        " count = count + 1, last_rssi = excluded.last_rssi, last_bridge = excluded.last_bridge,"
        " last_frame = excluded.last_frame",
        (device_id, now, now, rssi, bridge, frame),
    )


def list_quarantine(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute("SELECT * FROM quarantine ORDER BY last_seen DESC")]
