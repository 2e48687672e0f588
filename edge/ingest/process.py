"""What happens to a batch of UPLINKs inside the ingest transaction. No threads, no I/O but SQL.

``handle_batch`` classifies every frame (malformed, unknown device, bad MIC, replay,
duplicate, new) with a handful of set-wise statements per batch rather than per frame: one
look-up of the batch's devices, one of the ids already stored, one ``executemany`` of the new
readings, one device update per device. It returns each frame's ACK payload, to send once
the transaction has committed. Nothing is decoded here: values are derived from the raw
payload when read (edge.store.decode), after the ACK.
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from dataclasses import dataclass
from typing import Any, NamedTuple

from edge import downlinks, registry
from edge.radio import (
    MIC_SIZE,
    PORT_DOWNLINK_RESULT,
    PORT_READINGS,
    PORT_STATUS,
    RX_META,
    AckResult,
    RadioFormatError,
    build_ack,
    downlink_for,
    parse_downlink_result,
    split_serial_uplink,
)
from edge.store import cursor, readings
from edge.store.decode import parse_status
from edge.store.numbers import Numbers


@dataclass(slots=True)
class CommittedReading:
    """A reading as the post-commit hooks (rules, panel live view, sync) receive it, from memory."""

    id: int  # readings.id: device number << 32 | fcnt
    device_id: str
    fcnt: int
    port: int
    received_at: float
    raw: bytes
    rssi: int
    snr: float
    bridge_id: str | None
    codec: str  # the device's codec when stored: what decodes ``raw``

    @property
    def msg_id(self) -> str:
        return f"{self.device_id}:{self.fcnt}"


@dataclass(slots=True)
class Outcome:
    result: AckResult
    ack: bytes  # the ACK payload
    device_id: str | None = None
    fcnt: int | None = None
    reading: CommittedReading | None = None
    detail: str = ""
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class _Device:
    number: int
    key: bytes
    codec: str
    last_fcnt: int
    stored: bool = False  # a reading of it is stored in this batch: its row needs updating
    rssi: int = 0
    snr: float = 0.0
    bridge: str | None = None


def _reject(result: AckResult, detail: str, device_id: str | None = None, fcnt: int | None = None) -> Outcome:
    return Outcome(result, build_ack(result), device_id, fcnt, detail=detail)


def handle_uplink(
    conn: sqlite3.Connection, payload: bytes, *, bridge_id: str | None, numbers: Numbers, now: float
) -> Outcome:
    """One UPLINK in its own savepoint (the writer's slow path after a batch failed)."""
    conn.execute("SAVEPOINT uplink")
    try:
        (outcome,) = handle_batch(conn, [(payload, bridge_id)], numbers=numbers, now=now)
    except BaseException:
        conn.execute("ROLLBACK TO uplink")
        conn.execute("RELEASE uplink")
        raise
    conn.execute("RELEASE uplink")
    return outcome


class _Frame(NamedTuple):
    """One UPLINK, split (edge.radio.split_serial_uplink): a tuple, the cheapest record per frame."""

    rssi: int
    snr_q: int
    rx_time: int
    device: bytes  # the id as the air carries it (8 bytes)
    device_id: str
    fcnt: int
    port: int
    payload: bytes
    signed: bytes
    mic: bytes
    bridge_id: str | None


def handle_batch(
    conn: sqlite3.Connection,
    frames: list[tuple[bytes, str | None]],
    *,
    numbers: Numbers,
    now: float,
) -> list[Outcome]:
    """Process (payload, bridge id) UPLINKs in order, inside the caller's transaction."""
    now_ms = round(now * 1000)
    outcomes: list[Outcome | None] = []
    parsed: list[_Frame | None] = []
    for payload, bridge_id in frames:
        try:
            rssi, snr_q, rx_time, dev_id, fcnt, port, app, signed, mic = split_serial_uplink(payload)
        except RadioFormatError as exc:
            outcomes.append(_reject(AckResult.MALFORMED, str(exc)))
            parsed.append(None)
            continue
        outcomes.append(None)
        parsed.append(
            _Frame(rssi, snr_q, rx_time, dev_id, dev_id.hex(), fcnt, port, app, signed, mic, bridge_id)
        )
    devices = _load_devices(conn, {f.device_id for f in parsed if f is not None}, numbers)

    # Which frames may be new readings: known device, good MIC.
    candidates: dict[int, int] = {}  # position -> reading id
    for i, f in enumerate(parsed):
        if f is None:
            continue
        dev = devices.get(f.device_id)
        if dev is None:
            registry.note_unknown(
                conn,
                f.device_id,
                rssi=f.rssi,
                bridge=f.bridge_id,
                frame=frames[i][0][RX_META.size :],
                now=now,
            )
            outcomes[i] = _reject(
                AckResult.UNKNOWN_DEVICE, "not registered: quarantined", f.device_id, f.fcnt
            )
        elif not hmac.compare_digest(hmac.digest(dev.key, f.signed, "sha256")[:MIC_SIZE], f.mic):
            outcomes[i] = _reject(
                AckResult.BAD_MIC, "MIC does not match the registered key", f.device_id, f.fcnt
            )
        else:
            candidates[i] = (dev.number << readings.FCNT_BITS) | f.fcnt
    stored = readings.existing(conn, list(set(candidates.values()))) if candidates else {}

    rows: list[tuple] = []
    new_positions: list[int] = []
    for i, rid in candidates.items():
        f = parsed[i]
        assert f is not None
        dev = devices[f.device_id]
        earlier = stored.get(rid)
        if earlier is not None and _is_same_reading(earlier, f.port, f.payload):
            # Stored before (a retransmission whose ACK was lost): ACK again, with the same downlink.
            pending = downlinks.sent_on(conn, f.device_id, f.fcnt)
            down = downlink_for(dev.key, f.device, f.fcnt, pending.encode() if pending else None)
            outcomes[i] = Outcome(
                AckResult.DUPLICATE,
                build_ack(AckResult.DUPLICATE, down),
                f.device_id,
                f.fcnt,
                detail="stored before",
            )
            continue
        if f.fcnt <= dev.last_fcnt or earlier is not None:
            why = (
                f"fcnt {f.fcnt} <= last {dev.last_fcnt}"
                if earlier is None
                else f"fcnt {f.fcnt} collides with a different reading stored before"
            )
            outcomes[i] = _reject(AckResult.REPLAYED, why, f.device_id, f.fcnt)
            continue
        bridge = numbers.number(conn, f.bridge_id, create=True) if f.bridge_id else None
        skew = f.rx_time - now_ms // 1000 if f.rx_time else None
        rows.append((rid, now_ms, f.port, f.rssi, f.snr_q, bridge, skew, f.payload))
        # a later frame of the batch at the same id is this reading sent again
        stored[rid] = (now_ms, f.port, f.payload)
        dev.last_fcnt, dev.stored = f.fcnt, True
        dev.rssi, dev.snr, dev.bridge = f.rssi, f.snr_q / 4, f.bridge_id
        new_positions.append(i)

    if rows:
        readings.insert_many(conn, rows)
        # A counter that started over (re-provisioning, a new key) can store a reading below a sync
        # cursor; the cursor goes back to just before it, so it is sent (the cloud deduplicates the
        # synced readings sent again after it by their ids). Nothing stored is ever below a cursor
        # without having been sent.
        first_new: dict[int, int] = {}
        for row in rows:
            n = row[0] >> readings.FCNT_BITS
            if row[0] < first_new.get(n, row[0] + 1):
                first_new[n] = row[0]
        cursor.rewind(conn, first_new)
        conn.executemany(
            "UPDATE devices SET last_fcnt = ?, last_seen = ?, last_rssi = ?, last_snr = ?, last_bridge = ?"
            " WHERE id = ?",
            [
                (d.last_fcnt, now, d.rssi, d.snr, d.bridge, dev_id)
                for dev_id, d in devices.items()
                if d.stored
            ],
        )
    with_downlinks = _queued_for(conn, {parsed[i].device_id for i in new_positions}, now)  # type: ignore[union-attr]
    received_at = now_ms / 1000
    for i in new_positions:
        f = parsed[i]
        assert f is not None
        dev = devices[f.device_id]
        if f.port != PORT_READINGS:
            _apply_port(conn, f.device_id, f.port, f.payload, now)
        pending = (
            downlinks.take_for_uplink(conn, f.device_id, f.fcnt, now=now)
            if f.device_id in with_downlinks
            else None
        )
        down = downlink_for(dev.key, f.device, f.fcnt, pending.encode() if pending else None)
        reading = CommittedReading(
            candidates[i],
            f.device_id,
            f.fcnt,
            f.port,
            received_at,
            f.payload,
            f.rssi,
            f.snr_q / 4,
            f.bridge_id,
            dev.codec,
        )
        outcomes[i] = Outcome(
            AckResult.STORED,
            build_ack(AckResult.STORED, down),
            f.device_id,
            f.fcnt,
            reading,
            extra={"downlink": pending.id} if pending else None,
        )
    return outcomes  # type: ignore[return-value]


def _load_devices(conn: sqlite3.Connection, ids: set[str], numbers: Numbers) -> dict[str, _Device]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    out = {}
    for dev_id, key, codec, last_fcnt in conn.execute(
        f"SELECT id, key, codec, last_fcnt FROM devices WHERE id IN ({marks})", list(ids)
    ):
        number = numbers.number(conn, dev_id, create=True)
        out[dev_id] = _Device(number, bytes(key), codec, last_fcnt)  # type: ignore[arg-type]
    return out


def _queued_for(conn: sqlite3.Connection, device_ids: set[str], now: float) -> set[str]:
    """Which of these devices have a live queued downlink (one query for the batch)."""
    if not device_ids:
        return set()
    marks = ",".join("?" * len(device_ids))
    return {
        row[0]
        for row in conn.execute(
            f"SELECT DISTINCT device_id FROM downlinks WHERE status = 'queued' AND expires_at > ?"
            f" AND device_id IN ({marks})",
            (now, *device_ids),
        )
    }


def _apply_port(conn: sqlite3.Connection, device_id: str, port: int, payload: bytes, now: float) -> None:
    """What a module's own messages change besides the reading: a downlink's result, its status."""
    if port == PORT_DOWNLINK_RESULT:
        try:
            downlinks.record_result(conn, device_id, parse_downlink_result(payload), now=now)
        except RadioFormatError:
            pass  # stored as received; the panel shows why it does not decode
    elif port == PORT_STATUS:
        try:
            status = parse_status(payload)
        except ValueError:
            return
        conn.execute("UPDATE devices SET status = ? WHERE id = ?", (json.dumps(status), device_id))


def _is_same_reading(stored: tuple[int, int, bytes], port: int, payload: bytes) -> bool:
    """Whether a verified frame at a stored (device, fcnt) is that stored reading sent again.

    Only the same port and payload are: a frame whose ACK was lost comes back byte for byte
    (the firmware may sign it again under a rotated key, so the MIC can differ). A different
    payload at a stored fcnt is a counter that went back colliding with an old reading; it is
    refused, never ACKed as "duplicate", or the module would drop a reading nobody stored.
    """
    _received_ms, stored_port, raw = stored
    return stored_port == port and raw == bytes(payload)
