"""The edge as LoRaWAN network and join server for the nodes its bridges hear.

SQL inside the ingest transaction, no I/O besides: a join request becomes a session (keys
derived, DevNonce recorded, a DevAddr given out, a join accept to send back); a data uplink
is matched to its session by DevAddr, its 32-bit counter rebuilt from the 16 bits on the air,
its MIC checked and its payload decrypted; downlinks (the ACK of a confirmed uplink, a
command, a "rejoin") are built with the session's keys and its own down counter.

Message ids stay ``<DevEUI>:<n>``: n is the session's ``base`` plus its FCnt. A Fieldpost node
opens each session with a port-5 frame naming the 32-bit counter of its next reading (its own
counter, never reused), so ``base`` makes the ids equal the node's counters across any number of
joins: a reading whose ACK was lost before a rejoin comes back under its old id and is a
duplicate, not a second copy. Until then (and for devices that never announce) ``base`` is one
above the highest counter stored. A node whose counter went back is moved above everything
stored at its next session (the "continuing counter").
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass

from edge.lorawan import frames as F
from edge.lorawan.settings import LoRaWANSettings
from edge.store import readings

PORT_CONTROL = 4  # Fieldpost downlink port: session control; payload 0x01 = rejoin now
REJOIN = b"\x01"
PORT_SESSION = 5  # Fieldpost uplink port: the first frame of a session names the node's counter


class JoinRefused(Exception):
    """A join request the edge will not answer; ``kind`` is the ACK result's name."""

    def __init__(self, kind: str, detail: str, device_id: str | None = None):
        self.kind = kind
        self.device_id = device_id
        super().__init__(detail)


@dataclass(slots=True)
class Session:
    device_id: str
    devaddr: int
    nwk_skey: bytes
    app_skey: bytes
    base: int
    fcnt_up: int
    fcnt_down: int
    dirty: bool = False

    def downlink(self, *, ack: bool, fport: int | None = None, payload: bytes = b"") -> bytes:
        """The next downlink of this session (its down counter advances)."""
        frame = F.build_data(
            F.UNCONFIRMED_DOWN,
            self.devaddr,
            self.fcnt_down,
            fport,
            payload,
            nwk_key=self.nwk_skey,
            app_key=self.app_skey,
            fctrl=F.FCTRL_ACK if ack else 0,
        )
        self.fcnt_down += 1
        self.dirty = True
        return frame


def session_by_devaddr(conn: sqlite3.Connection, devaddr: int) -> Session | None:
    row = conn.execute(
        "SELECT device_id, devaddr, nwk_skey, app_skey, base, fcnt_up, fcnt_down FROM lorawan_sessions"
        " WHERE devaddr = ?",
        (devaddr,),
    ).fetchone()
    return None if row is None else Session(row[0], row[1], bytes(row[2]), bytes(row[3]), *row[4:])


def has_session(conn: sqlite3.Connection, device_id: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM lorawan_sessions WHERE device_id = ?", (device_id,)).fetchone()
        is not None
    )


def save(conn: sqlite3.Connection, sessions: list[Session]) -> None:
    conn.executemany(
        "UPDATE lorawan_sessions SET fcnt_up = ?, fcnt_down = ? WHERE device_id = ?",
        [(s.fcnt_up, s.fcnt_down, s.device_id) for s in sessions if s.dirty],
    )


def drop_session(conn: sqlite3.Connection, device_id: str) -> None:
    """Forget a device's session (a new AppKey, re-provisioning): it must join again."""
    conn.execute("DELETE FROM lorawan_sessions WHERE device_id = ?", (device_id,))


def _next_counter(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute(
        "INSERT INTO lorawan_counters (name, value) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET value = value + 1"
        " RETURNING value",
        (name,),
    ).fetchone()
    return int(row[0])


def add_counter(conn: sqlite3.Connection, name: str, n: int) -> None:
    conn.execute(
        "INSERT INTO lorawan_counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + ?",
        (name, n, n),
    )


def counter(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute("SELECT value FROM lorawan_counters WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else 0


def _new_devaddr(conn: sqlite3.Connection, net_id: int) -> int:
    # NwkID (the NetID's 7 low bits) in the top 7 bits, 25 random bits below, unique on this edge.
    while True:
        devaddr = ((net_id & 0x7F) << 25) | secrets.randbits(25)
        if conn.execute("SELECT 1 FROM lorawan_sessions WHERE devaddr = ?", (devaddr,)).fetchone() is None:
            return devaddr


def next_base(conn: sqlite3.Connection, number: int, last_fcnt: int) -> int:
    """One above the highest message counter the device ever had stored (its readings or its floor)."""
    low, high = readings.device_bounds(number)
    row = conn.execute("SELECT max(id) FROM readings WHERE id BETWEEN ? AND ?", (low, high)).fetchone()
    top = row[0] & readings.FCNT_MASK if row and row[0] is not None else -1
    return max(top, last_fcnt) + 1


def announce(conn: sqlite3.Connection, session: Session, fcnt: int, payload: bytes, number: int) -> str:
    """A port-5 session start at session FCnt ``fcnt``: the node's next reading has counter
    ``payload`` (u32), so ids are base + FCnt with base = counter - (fcnt + 1). After a counter
    reset the ids are kept above everything stored. Returns what was decided (for the log)."""
    if len(payload) != 4:
        raise ValueError(f"session start of {len(payload)} bytes, expected 4")
    first = int.from_bytes(payload, "big")
    row = conn.execute(
        "SELECT last_fcnt, lorawan_reset FROM devices WHERE id = ?", (session.device_id,)
    ).fetchone()
    base = first - (fcnt + 1)
    if row is not None and row[1]:
        floor = next_base(conn, number, row[0]) - (fcnt + 1)
        base = max(base, floor)
        conn.execute("UPDATE devices SET lorawan_reset = 0 WHERE id = ?", (session.device_id,))
    session.base, session.fcnt_up, session.dirty = base, max(session.fcnt_up, fcnt), True
    conn.execute("UPDATE lorawan_sessions SET base = ? WHERE device_id = ?", (base, session.device_id))
    return f"session counter {first}, ids from {base + fcnt + 1}"


def join(
    conn: sqlite3.Connection, frame: bytes, *, number_of, settings: LoRaWANSettings, now: float
) -> tuple[str, bytes]:
    """Answer a join request: (device id, join accept) or JoinRefused. ``number_of(device_id)``
    gives the device's reading-id number."""
    jr = F.parse_join_request(frame)
    device_id = jr.dev_eui.hex()
    row = conn.execute(
        "SELECT key, join_eui, dev_nonce, last_fcnt FROM devices WHERE id = ?", (device_id,)
    ).fetchone()
    if row is None:
        raise JoinRefused("unknown_device", f"join request of unregistered DevEUI {device_id}", device_id)
    app_key, join_eui, last_nonce, last_fcnt = bytes(row[0]), row[1] or settings.join_eui, row[2], row[3]
    if jr.join_eui.hex() != join_eui:
        raise JoinRefused("malformed", f"JoinEUI {jr.join_eui.hex()}, registered {join_eui}", device_id)
    if not jr.mic_ok(app_key):
        raise JoinRefused("bad_mic", "join request MIC does not match the AppKey", device_id)
    if jr.dev_nonce <= last_nonce:
        raise JoinRefused(
            "replayed", f"DevNonce {jr.dev_nonce} used before (highest so far {last_nonce})", device_id
        )
    join_nonce = _next_counter(conn, "join_nonce") & 0xFFFFFF
    devaddr = _new_devaddr(conn, settings.net_id)
    nwk, app = F.session_keys(app_key, join_nonce, settings.net_id, jr.dev_nonce)
    base = next_base(conn, number_of(device_id), last_fcnt)
    conn.execute("UPDATE devices SET dev_nonce = ? WHERE id = ?", (jr.dev_nonce, device_id))
    conn.execute(
        "INSERT INTO lorawan_sessions (device_id, devaddr, nwk_skey, app_skey, base, fcnt_up, fcnt_down, dev_nonce,"
        " joined_at) VALUES (?, ?, ?, ?, ?, -1, 0, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
        " devaddr = excluded.devaddr, nwk_skey = excluded.nwk_skey, app_skey = excluded.app_skey,"
        " base = excluded.base, fcnt_up = -1, fcnt_down = 0, dev_nonce = excluded.dev_nonce,"
        " joined_at = excluded.joined_at",
        (device_id, devaddr, nwk, app, base, jr.dev_nonce, now),
    )
    accept = F.build_join_accept(
        app_key,
        join_nonce,
        settings.net_id,
        devaddr,
        dl_settings=dl_settings(settings),
        rx_delay=settings.rx1_delay_s,
    )
    return device_id, accept


def dl_settings(settings: LoRaWANSettings) -> int:
    """The join accept's DLSettings byte: RX1DROffset (bits 6..4), RX2DataRate (bits 3..0)."""
    return (settings.rx1_dr_offset & 7) << 4 | (settings.rx2_dr & 0x0F)


def windows(settings: LoRaWANSettings) -> list[int]:
    """What a bridge needs to put a downlink in a node's receive windows (HELLO_ACK "rx"):
    [RECEIVE_DELAY1 s, RX1DROffset, RX2 data rate], as every join accept announces them."""
    return [settings.rx1_delay_s, settings.rx1_dr_offset, settings.rx2_dr]


def activate_abp(
    conn: sqlite3.Connection,
    device_id: str,
    *,
    devaddr: int,
    nwk_skey: bytes,
    app_skey: bytes,
    number: int,
    now: float,
) -> None:
    """ABP: a session set by hand (both sides given the same DevAddr and keys), counters at 0."""
    if len(nwk_skey) != 16 or len(app_skey) != 16:
        raise ValueError("session keys must be 16 bytes")
    row = conn.execute("SELECT last_fcnt FROM devices WHERE id = ?", (device_id,)).fetchone()
    if row is None:
        raise ValueError(f"device {device_id} is not registered")
    base = next_base(conn, number, row[0])
    conn.execute(
        "INSERT INTO lorawan_sessions (device_id, devaddr, nwk_skey, app_skey, base, joined_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET devaddr = excluded.devaddr,"
        " nwk_skey = excluded.nwk_skey, app_skey = excluded.app_skey, base = excluded.base, fcnt_up = -1,"
        " fcnt_down = 0, dev_nonce = NULL, joined_at = excluded.joined_at",
        (device_id, devaddr, nwk_skey, app_skey, base, now),
    )


@dataclass(slots=True)
class Opened:
    """A data uplink whose MIC verified: its session, 32-bit FCnt, port and plaintext."""

    session: Session
    fcnt: int  # the session's 32-bit FCntUp
    fport: int
    payload: bytes
    confirmed: bool

    @property
    def msg_fcnt(self) -> int:
        return self.session.base + self.fcnt

    @property
    def went_back(self) -> bool:
        """At or below the highest FCnt stored this session: a retransmission, or a counter reset."""
        return self.fcnt <= self.session.fcnt_up


def open_uplink(session: Session, frame: F.DataFrame) -> Opened | None:
    """Verify and decrypt a data uplink of ``session``; None when the MIC does not verify.

    The 32-bit counter is the nearest above the last stored one; when that fails the MIC, the
    same 16 bits one wrap lower are tried too, so a frame whose counter went back (a node that
    lost its counter, a replay) is recognised as such rather than as a forgery."""
    full = F.full_fcnt(session.fcnt_up, frame.fcnt16)
    candidates = (full, full - 0x10000) if full >= 0x10000 else (full,)
    for fcnt in candidates:
        if frame.mic_ok(session.nwk_skey, fcnt):
            if frame.fport is None or frame.fport == 0:
                return Opened(session, fcnt, frame.fport or 0, b"", frame.confirmed)
            return Opened(
                session,
                fcnt,
                frame.fport,
                frame.decrypt(session.nwk_skey, session.app_skey, fcnt),
                frame.confirmed,
            )
    return None
