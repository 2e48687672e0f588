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

from edge import downlinks
from edge.fuota import air as fuota_air
from edge.lorawan import frames as lw
from edge.lorawan import server as lw_server
from edge.lorawan.network import Network
from edge.radio import (
    MIC_SIZE,
    PORT_AGED,
    PORT_DOWNLINK_RESULT,
    PORT_READINGS,
    PORT_STATUS,
    RX_META,
    AckResult,
    RadioFormatError,
    build_ack,
    downlink_for,
    parse_downlink_result,
    split_aged,
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
    age_s: int | None = None  # how long it waited on the module (docs/radio.md 0.9); None: fresh

    @property
    def msg_id(self) -> str:
        return f"{self.device_id}:{self.fcnt}"

    @property
    def measured_at(self) -> float:
        """When it was measured: the receive time less its age."""
        return self.received_at - self.age_s if self.age_s else self.received_at


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
    lorawan: bool = False  # it has joined (or has an ABP session): Fieldpost v1 frames are refused
    is_bridge: bool = False  # a bridge: its own frames come over the serial link, never the air (v1 kept)
    stored: bool = False  # a reading of it is stored in this batch: its row needs updating
    rssi: int = 0
    snr: float = 0.0
    bridge: str | None = None


def _reject(result: AckResult, detail: str, device_id: str | None = None, fcnt: int | None = None) -> Outcome:
    return Outcome(result, build_ack(result), device_id, fcnt, detail=detail)


def handle_uplink(
    conn: sqlite3.Connection,
    payload: bytes,
    *,
    bridge_id: str | None,
    numbers: Numbers,
    now: float,
    network: Network | None = None,
) -> Outcome:
    """One UPLINK in its own savepoint (the writer's slow path after a batch failed)."""
    conn.execute("SAVEPOINT uplink")
    try:
        (outcome,) = handle_batch(conn, [(payload, bridge_id)], numbers=numbers, now=now, network=network)
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
    opened: lw_server.Opened | None = None  # a LoRaWAN uplink, verified and decrypted
    age: int | None = None  # a reading that waited (port 8): its age in s; port and payload are port 1's


def handle_batch(
    conn: sqlite3.Connection,
    frames: list[tuple[bytes, str | None]],
    *,
    numbers: Numbers,
    now: float,
    network: Network | None = None,
) -> list[Outcome]:
    """Process (payload, bridge id) UPLINKs in order, inside the caller's transaction."""
    network = network or Network()
    network.begin()
    now_ms = round(now * 1000)
    outcomes: list[Outcome | None] = []
    parsed: list[_Frame | None] = []
    for payload, bridge_id in frames:
        mhdr = payload[RX_META.size] if len(payload) > RX_META.size else -1
        if mhdr == lw.JOIN_REQUEST:
            outcomes.append(_join(conn, payload, bridge_id, network, numbers, now))
            parsed.append(None)
            continue
        if mhdr in lw.UPLINKS:
            got = _open_lorawan(conn, payload, bridge_id, network, numbers, now)
            if got is not None:
                outcomes.append(got if isinstance(got, Outcome) else None)
                parsed.append(got if isinstance(got, _Frame) else None)
                continue
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
    for i, f in enumerate(parsed):
        if f is not None and f.port == PORT_AGED:
            # A reading that waited on its module: stored as the port-1 reading it is, with its
            # age, so a retransmission (fresh, then aged) is the same reading.
            try:
                age, lpp = split_aged(f.payload)
            except RadioFormatError as exc:
                outcomes[i] = _reject(AckResult.MALFORMED, str(exc), f.device_id, f.fcnt)
                parsed[i] = None
                continue
            parsed[i] = f._replace(port=PORT_READINGS, payload=lpp, age=age or None)
    devices = _load_devices(conn, {f.device_id for f in parsed if f is not None}, numbers)

    # Which frames may be new readings: known device, good MIC.
    candidates: dict[int, int] = {}  # position -> reading id
    for i, f in enumerate(parsed):
        if f is None:
            continue
        dev = devices.get(f.device_id)
        if f.opened is not None and dev is not None:
            candidates[i] = (dev.number << readings.FCNT_BITS) | f.fcnt
        elif dev is None:
            noted = network.quarantine(
                conn,
                f.device_id,
                rssi=f.rssi,
                bridge=f.bridge_id,
                frame=frames[i][0][RX_META.size :],
                now=now,
            )
            why = (
                "not registered: quarantined"
                if noted
                else "not registered (quarantine rate exceeded: dropped)"
            )
            outcomes[i] = _reject(AckResult.UNKNOWN_DEVICE, why, f.device_id, f.fcnt)
        elif dev.lorawan or not (network.settings.accept_v1 or dev.is_bridge or f.bridge_id is None):
            # On the radio, nodes speak LoRaWAN; v1 frames stay the protocol of a bridge's own
            # readings (its serial link) and of UDP/CoAP devices (no bridge: docs/sources.md).
            network.stats["v1_refused"] += 1
            outcomes[i] = _reject(
                AckResult.MALFORMED,
                "old-format frame (Fieldpost radio v1): this device speaks LoRaWAN now; update its firmware"
                if dev.lorawan
                else "old-format frame (Fieldpost radio v1) from a node that never joined: the edge takes"
                " LoRaWAN frames only ([lorawan] accept_v1 = false; docs/radio.md 0.8)",
                f.device_id,
                f.fcnt,
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
            down = _downlink(dev, f, pending.encode() if pending else None)
            outcomes[i] = Outcome(
                AckResult.DUPLICATE,
                build_ack(AckResult.DUPLICATE, down),
                f.device_id,
                f.fcnt,
                detail="stored before",
            )
            continue
        if f.opened is not None and (f.opened.went_back or earlier is not None):
            # A valid frame whose counter went back with other bytes: never a "duplicate" (the node
            # would drop a reading nobody stored). The node is told to rejoin: new keys, counters
            # from 0 above everything stored (the continuing counter), its journal sent again.
            why = f"fcnt {f.opened.fcnt} <= {f.opened.session.fcnt_up} with other bytes: counter reset"
            down = network.counter_reset(conn, f.opened.session, why, now)
            outcomes[i] = Outcome(
                AckResult.REJOIN, build_ack(AckResult.REJOIN, down), f.device_id, f.fcnt, detail=why
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
        rows.append((rid, now_ms, f.port, f.rssi, f.snr_q, bridge, skew, f.payload, f.age))
        # a later frame of the batch at the same id is this reading sent again
        stored[rid] = (now_ms, f.port, f.payload)
        dev.last_fcnt, dev.stored = max(dev.last_fcnt, f.fcnt), True
        if f.opened is not None:
            sess = f.opened.session
            sess.fcnt_up, sess.dirty = max(sess.fcnt_up, f.opened.fcnt), True
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
    # nodes with a firmware update under way (edge/fuota/air.py): its offer or a chunk rides on a reading's ACK
    lorawan_new = {
        f.device_id
        for i in new_positions
        if (f := parsed[i]) is not None and f.opened is not None and f.port == PORT_READINGS
    }
    update_offers = fuota_air.offers(conn, lorawan_new - with_downlinks, now=now) if lorawan_new else {}
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
        offer = update_offers.pop(f.device_id, None) if pending is None else None
        if offer is not None and f.opened is not None:
            down = f.opened.session.downlink(ack=f.opened.confirmed, fport=offer[0], payload=offer[1])
        else:
            down = _downlink(dev, f, pending.encode() if pending else None)
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
            f.age,
        )
        outcomes[i] = Outcome(
            AckResult.STORED,
            build_ack(AckResult.STORED, down),
            f.device_id,
            f.fcnt,
            reading,
            extra={"downlink": pending.id} if pending else None,
        )
    network.finish(conn)
    return outcomes  # type: ignore[return-value]


def _downlink(dev: _Device, f: _Frame, command: bytes | None) -> bytes:
    """The downlink answering a stored (or duplicate) uplink: a LoRaWAN ACK (with the command on
    port 3) for a confirmed LoRaWAN uplink, nothing for an unconfirmed one without a command,
    the Fieldpost v1 downlink otherwise."""
    if f.opened is None:
        return downlink_for(dev.key, f.device, f.fcnt, command)
    if command is None and not f.opened.confirmed:
        return b""
    return f.opened.session.downlink(
        ack=f.opened.confirmed, fport=None if command is None else 3, payload=command or b""
    )


def _join(
    conn: sqlite3.Connection,
    payload: bytes,
    bridge_id: str | None,
    network: Network,
    numbers: Numbers,
    now: float,
) -> Outcome:
    radio = payload[RX_META.size :]
    try:
        device_id, accept = network.join(
            conn, radio, number_of=lambda d: numbers.number(conn, d, create=True), now=now
        )
    except lw.LoRaWANFormatError as exc:
        return _reject(AckResult.MALFORMED, f"join request: {exc}")
    except lw_server.JoinRefused as exc:
        result = AckResult[exc.kind.upper()]
        if result == AckResult.UNKNOWN_DEVICE and exc.device_id is not None:
            rssi = RX_META.unpack_from(payload)[0]
            if not network.quarantine(conn, exc.device_id, rssi=rssi, bridge=bridge_id, frame=radio, now=now):
                return _reject(result, f"{exc} (quarantine rate exceeded: dropped)", exc.device_id)
            return _reject(result, f"{exc}: quarantined", exc.device_id)
        if result == AckResult.BAD_MIC and not network.mic_failed((bridge_id, exc.device_id)):
            return _reject(result, "", exc.device_id)
        return _reject(result, str(exc), exc.device_id)
    return Outcome(AckResult.JOINED, build_ack(AckResult.JOINED, accept), device_id, detail="joined")


def _session_start(conn: sqlite3.Connection, opened: lw_server.Opened, numbers: Numbers) -> Outcome:
    session = opened.session
    number = numbers.number(conn, session.device_id, create=True)
    assert number is not None  # create=True: a number is made when there is none
    try:
        what = lw_server.announce(conn, session, opened.fcnt, opened.payload, number)
    except ValueError as exc:
        return _reject(AckResult.MALFORMED, str(exc), session.device_id)
    down = session.downlink(ack=True) if opened.confirmed else b""
    return Outcome(AckResult.STORED, build_ack(AckResult.STORED, down), session.device_id, detail=what)


def _update_request(conn: sqlite3.Connection, opened: lw_server.Opened, now: float) -> Outcome:
    """A node's fragment request (edge/fuota/air.py): answered with one chunk, never stored. It
    takes a counter of the node's like a reading, so a replayed one is refused like a reading."""
    session = opened.session
    if opened.went_back:
        return _reject(AckResult.REPLAYED, f"fragment request at fcnt {opened.fcnt} <= {session.fcnt_up}")
    session.fcnt_up, session.dirty = opened.fcnt, True
    try:
        fport, payload = fuota_air.answer(conn, session.device_id, opened.payload, now=now)
    except fuota_air.RequestError as exc:
        return _reject(AckResult.MALFORMED, f"update: {exc}", session.device_id)
    down = session.downlink(ack=opened.confirmed, fport=fport, payload=payload)
    return Outcome(
        AckResult.STORED, build_ack(AckResult.STORED, down), session.device_id, detail="update request"
    )


def _open_lorawan(
    conn: sqlite3.Connection,
    payload: bytes,
    bridge_id: str | None,
    network: Network,
    numbers: Numbers,
    now: float,
) -> _Frame | Outcome | None:
    """A LoRaWAN data uplink opened with its session, or its rejection; None: not LoRaWAN (an
    unconfirmed-up MHDR 0x40 of no known session is a Fieldpost v1 frame, which shares it)."""
    radio = payload[RX_META.size :]
    try:
        frame = lw.parse_data(radio)
    except lw.LoRaWANFormatError as exc:
        return None if radio[0] == lw.UNCONFIRMED_UP else _reject(AckResult.MALFORMED, str(exc))
    session = network.session(conn, frame.devaddr)
    if session is None:
        if radio[0] == lw.UNCONFIRMED_UP:
            return None
        # Nothing to adopt from a DevAddr: the device must join (it will, after enough silence).
        return _reject(AckResult.UNKNOWN_DEVICE, f"DevAddr {frame.devaddr:08x} has no session: join first")
    opened = lw_server.open_uplink(session, frame)
    if opened is None:
        if network.mic_failed((bridge_id, frame.devaddr)):
            return _reject(AckResult.BAD_MIC, "MIC does not match the session keys", session.device_id)
        return _reject(AckResult.BAD_MIC, "", session.device_id)  # over its rate: counted, not logged
    if opened.fport == lw_server.PORT_SESSION:
        if opened.fcnt < session.fcnt_up:
            return _reject(AckResult.REPLAYED, f"session start at fcnt {opened.fcnt} < {session.fcnt_up}")
        return _session_start(conn, opened, numbers)  # again when its ACK was lost: the same answer
    if opened.fport == fuota_air.PORT_FRAG:
        return _update_request(conn, opened, now)
    rssi, snr_q, rx_time = RX_META.unpack_from(payload)
    device = bytes.fromhex(session.device_id)
    return _Frame(
        rssi,
        snr_q,
        rx_time,
        device,
        session.device_id,
        opened.msg_fcnt,
        opened.fport,
        opened.payload,
        b"",
        b"",
        bridge_id,
        opened,
    )


def _load_devices(conn: sqlite3.Connection, ids: set[str], numbers: Numbers) -> dict[str, _Device]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    out = {}
    for dev_id, key, codec, last_fcnt, joined, role in conn.execute(
        f"SELECT id, key, codec, last_fcnt, EXISTS (SELECT 1 FROM lorawan_sessions s WHERE s.device_id = devices.id),"
        f" role FROM devices WHERE id IN ({marks})",
        list(ids),
    ):
        number = numbers.number(conn, dev_id, create=True)
        assert number is not None  # create=True: a number is made when there is none
        out[dev_id] = _Device(number, bytes(key), codec, last_fcnt, bool(joined), role == "bridge")
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
    elif port == fuota_air.PORT:
        fuota_air.apply_result(conn, device_id, payload, now=now)


def _is_same_reading(stored: tuple[int, int, bytes], port: int, payload: bytes) -> bool:
    """Whether a verified frame at a stored (device, fcnt) is that stored reading sent again.

    Only the same port and payload are: a frame whose ACK was lost comes back byte for byte
    (the firmware may sign it again under a rotated key, so the MIC can differ). A different
    payload at a stored fcnt is a counter that went back colliding with an old reading; it is
    refused, never ACKed as "duplicate", or the module would drop a reading nobody stored.
    """
    _received_ms, stored_port, raw = stored
    return stored_port == port and raw == bytes(payload)
