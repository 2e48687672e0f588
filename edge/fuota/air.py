"""Firmware updates of nodes over the air: the edge's half of the fragment session
(firmware/fp/update_air.py has the node's, and the frame layouts; docs/updates.md).

Plain SQL inside the ingest transaction, no I/O but reading a package file: the edge keeps no
transfer state in memory (the row keeps the node's last request). The node holds the bitmap of its chunks and asks for what it misses,
each request naming the package and the chunk size its data rate carries; each answer is one
chunk, built from the request alone. So an edge restart, a node's sleep or reboot costs nothing
but the request in flight. Offers, and then chunks, ride on the ACK of a node's reading while its
update is active; ``max_in_flight`` holds queued updates back while that many are under way.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

from edge.fuota import energy, jobs

PORT = 6  # down: offer / stop; up: result (journaled, stored like a status)
PORT_FRAG = 7  # up: fragment request; down: chunk
OFFER, STOP = 1, 0
REQUEST_SIZE = 9  # package id (4), chunk size (1), first missing (2), bitmap (2)
OFFER_SIZE = 21  # 25 with the energy pace
_WINDOW = 16
_CACHE: dict[str, bytes] = {}  # package SHA-256 -> bytes; a few packages at most are in flight
_CACHE_MAX = 8


class RequestError(ValueError):
    """A fragment request the edge cannot answer (its text says why)."""


PACED_OFFER_FROM = "0.4.0"  # the first node firmware that reads an offer's energy pace


def offer_payload(job: jobs.Job) -> bytes:
    """The offer (FPort 6): the package's id and size and, when the update keeps an energy pace,
    the gap (s) and the burst (requests), u16 each (a node before PACED_OFFER_FROM reads only
    21 bytes: it is never given a pace, edge/fuota/updates.py)."""
    offer = bytes((OFFER,)) + bytes.fromhex(job.sha256)[:16] + job.size.to_bytes(4, "big")
    if job.air_gap_s and job.air_burst:
        offer += job.air_gap_s.to_bytes(2, "big") + job.air_burst.to_bytes(2, "big")
    return offer


def _active_air(conn: sqlite3.Connection, device_ids: set[str] | None = None) -> list[jobs.Job]:
    return [j for j in jobs.active(conn, "air") if device_ids is None or j.device_id in device_ids]


def offers(conn: sqlite3.Connection, device_ids: set[str], *, now: float) -> dict[str, tuple[int, bytes]]:
    """(FPort, payload) to put on the ACK of each of these nodes' readings, if it has an update.

    A queued update starts (becomes ``sending``) here, when fewer air updates than its
    ``max_in_flight`` are under way (sending or staged). Once the node has asked for chunks, each
    reading's ACK carries the next chunk its last request showed missing, after the ones already
    put on ACKs since (a reading is sent anyway: its ACK carries a chunk for the price of the
    chunk's bytes); before that, and when none is left to push, the offer (the node ignores an
    offer it holds; an offer lost on the air is made again)."""
    if not device_ids:
        return {}
    everything = _active_air(conn)
    mine = [j for j in everything if j.device_id in device_ids and j.state in ("queued", "sending")]
    if not mine:
        return {}
    in_flight = sum(1 for j in everything if j.state in ("sending", "staged"))
    out = {}
    for job in mine:
        if job.state == "queued":
            if job.max_in_flight is not None and in_flight >= job.max_in_flight:
                continue
            jobs.progress(conn, job.id, 0, now=now)
            in_flight += 1
        pushed = _push(conn, job)
        out[job.device_id] = pushed if pushed is not None else (PORT, offer_payload(job))
    return out


def _missing_after(index: int, first: int, bitmap: int, count: int) -> int | None:
    """The first chunk above ``index`` the node's last request (``first``, ``bitmap``) did not show
    as held: beyond its bitmap's window nothing is known, so those count as missing."""
    for i in range(index + 1, count):
        if i == first or i > first + _WINDOW or (i > first and bitmap >> (i - first - 1) & 1):
            return i
    return None


def _push(conn: sqlite3.Connection, job: jobs.Job) -> tuple[int, bytes] | None:
    row = conn.execute(
        "SELECT air_chunk, air_first, air_bitmap, air_pushed FROM module_updates WHERE id = ?", (job.id,)
    ).fetchone()
    if row is None or row[0] is None:
        return None  # no request heard yet: the node may not hold the offer
    chunk, first, bitmap, pushed = row
    count = math.ceil(job.size / chunk)
    index = _missing_after(first if pushed is None else pushed, first, bitmap, count)
    if index is None:
        return None
    try:
        data = _package(job)
    except (OSError, RequestError):
        return None  # the request path reports it
    conn.execute("UPDATE module_updates SET air_pushed = ? WHERE id = ?", (index, job.id))
    return PORT_FRAG, index.to_bytes(2, "big") + data[index * chunk : (index + 1) * chunk]


def _package(job: jobs.Job) -> bytes:
    """The job's package, kept in memory by its SHA-256 (a few are in flight at most)."""
    data = _CACHE.get(job.sha256)
    if data is None:
        data = Path(job.package).read_bytes()
        if len(data) != job.size:
            raise RequestError(f"package {job.package} changed on disk")
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[job.sha256] = data
    return data


def parse_request(payload: bytes) -> tuple[bytes, int, int, int]:
    """(package id prefix, chunk size, first missing chunk, bitmap) of a fragment request."""
    if len(payload) != REQUEST_SIZE:
        raise RequestError(f"fragment request of {len(payload)} bytes, {REQUEST_SIZE} expected")
    chunk = payload[4]
    if chunk < 8:
        raise RequestError(f"chunk size {chunk}")
    return (
        bytes(payload[:4]),
        chunk,
        int.from_bytes(payload[5:7], "big"),
        int.from_bytes(payload[7:9], "big"),
    )


def answer(conn: sqlite3.Connection, device_id: str, payload: bytes, *, now: float) -> tuple[int, bytes]:
    """(FPort, payload) of the downlink answering a node's fragment request: the first chunk it
    misses, or a stop when it names no update of it under way (cancelled, ended, replaced)."""
    pid, chunk, first, bitmap = parse_request(payload)
    job = next(
        (
            j
            for j in _active_air(conn, {device_id})
            if j.state == "sending" and bytes.fromhex(j.sha256)[:4] == pid
        ),
        None,
    )
    if job is None:
        return PORT, bytes((STOP,)) + pid
    count = math.ceil(job.size / chunk)
    if first >= count:
        raise RequestError(f"chunk {first} of {count}")
    try:
        data = _package(job)
    except OSError as exc:
        raise RequestError(f"package {job.package}: {exc.strerror}") from None
    # what the node holds, as far as its request shows: everything before the first missing
    # chunk, and those of the next _WINDOW its bitmap does not ask for
    window = [first + 1 + k for k in range(_WINDOW) if first + 1 + k < count]
    held = first + sum(1 for k, _ in enumerate(window) if not bitmap >> k & 1)
    jobs.progress(conn, job.id, min(job.size, held * chunk), now=now)
    conn.execute(
        "UPDATE module_updates SET air_chunk = ?, air_first = ?, air_bitmap = ?, air_pushed = NULL WHERE id = ?",
        (chunk, first, bitmap, job.id),
    )
    return PORT_FRAG, first.to_bytes(2, "big") + data[first * chunk : (first + 1) * chunk]


def apply_result(conn: sqlite3.Connection, device_id: str, payload: bytes, *, now: float) -> None:
    """A node's FPort 6 result: its update staged, refused, kept (``updated``) or rolled back;
    the version it names is the one it runs (staged: the one it goes to)."""
    try:
        doc = json.loads(bytes(payload).decode("utf-8"))
        result, version = str(doc["r"]), str(doc["v"])
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        return  # stored as received; the panel shows why it does not decode
    why = str(doc.get("w", "")).replace("_", " ")
    if result != "staged":
        conn.execute("UPDATE devices SET firmware = ? WHERE id = ?", (version, device_id))
    job = next(iter(_active_air(conn, {device_id})), None)
    if job is None:
        return
    if result == "staged":
        jobs.staged(conn, job.id, now=now)
    elif result == "refused":
        jobs.finish(conn, job.id, "failed", error=f"the node refused the package: {why}", now=now)
    elif result == "updated" and version == job.version:
        jobs.finish(conn, job.id, "done", now=now)
    elif result == "rolled_back" and job.state == "staged":
        jobs.finish(conn, job.id, "rolled_back", error=f"the node went back to {version}: {why}", now=now)


# Per region: duty cycle and, per data rate, (SF, largest MAC payload): firmware/fp/airtime.py REGIONS
REGIONS: dict[str, tuple[float | None, tuple[tuple[int, int], ...]]] = {
    "EU868": (0.01, ((12, 51), (11, 51), (10, 51), (9, 115), (8, 222), (7, 222))),
    "US915": (None, ((10, 11), (9, 53), (8, 125), (7, 242))),
    "AS923": (0.01, ((12, 59), (11, 59), (10, 59), (9, 123), (8, 250), (7, 250))),
}


def time_on_air_ms(payload_len: int, sf: int, bw_khz: int = 125, cr: int = 5, preamble: int = 8) -> float:
    """LoRa time on air (Semtech AN1200.13; the firmware's fp/airtime.py), explicit header, CRC on."""
    tsym = (1 << sf) / bw_khz
    de = 1 if tsym >= 16 else 0
    num = 8 * payload_len - 4 * sf + 28 + 16
    blocks = max(math.ceil(num / (4 * (sf - 2 * de))), 0)
    return (preamble + 4.25) * tsym + (8 + blocks * cr) * tsym


def estimate(
    size: int,
    *,
    sf: int,
    max_payload: int,
    duty: float | None,
    interval_s: float = 300,
    power: dict | None = None,
    tx_dbm: int = 14,
    allowance_mah_day: float = 0.0,
) -> dict:
    """Chunks, airtime (node up, bridge down) and the least time an update of ``size`` bytes takes at
    this data rate, without loss. A chunk comes either as the answer to a request (the node's
    request, then the bridge's chunk a receive window's second later) or on the ACK of a reading
    (the bridge's chunk over the bare ACK it replaces: the reading is sent anyway), one per reading
    every ``interval_s``. The node's requests get its duty cycle less what its readings need (x1.5
    for resends, as firmware/fp/update_air.py fragment reserves); the bridge's chunks get its whole
    duty cycle (one node's: the updates in flight share it). Both budgets are a sliding hour, full
    at the start: a whole hour's worth may go at once. Not counted: a chunk on an ACK that a request
    also asks for (lost, or crossing), and the offer on the first reading's ACK.

    With the board's datasheet currents (``power``, its profile's section), the node's charge for
    the update (``energy_mah``) and, under an ``allowance_mah_day``, the pace its requests keep
    (edge/fuota/energy.py): a day's allowance at once, then evenly spread."""
    chunk = min(255, max_payload - 13 - 2)
    n = math.ceil(size / chunk)
    request_ms = time_on_air_ms(13 + REQUEST_SIZE, sf)
    chunk_ms = sum(time_on_air_ms(13 + 2 + min(chunk, size - i * chunk), sf) for i in range(n)) / n
    ack_ms = time_on_air_ms(13, sf)
    readings_per_h = 3600 / interval_s
    # one request after the other, with no budget in the way: the readings that fall in that time
    # carry one chunk each
    per_request_s = (request_ms + chunk_ms) / 1000 + 1.0
    paced_h = n * per_request_s / (interval_s + per_request_s) * interval_s / 3600
    hours = paced_h
    request_mas = ack_mas = 0.0
    paced: energy.Pace | None = None
    if power is not None:
        request_mas = energy.exchange_mas(power, tx_dbm=tx_dbm, request_ms=request_ms, chunk_ms=chunk_ms)
        ack_mas = energy.ack_chunk_mas(power, chunk_ms=chunk_ms, ack_ms=ack_ms)
        paced = energy.pace(allowance_mah_day, request_mas)
    # by T hours: the node's requests (its duty-cycle room x (T + 1) of them, and no more than its
    # energy pace allows) answered, and a reading's ACK each; the bridge's chunks, its budget x (T + 1)
    limits: list = []
    if duty:
        node_room = duty * 3_600_000 - time_on_air_ms(13 + 11, sf) * 1.5 * readings_per_h
        if node_room <= 0:
            hours = math.inf  # the readings take the whole budget: no request, so no start either
        else:
            asked_per_h = node_room / request_ms
            limits.append(lambda t: asked_per_h * (t + 1))
            hours = max(hours, n / (duty * 3_600_000 / chunk_ms) - 1)
    if paced is not None:
        limits.append(lambda t: paced.requests_by(t * 3600))
    if limits and math.isfinite(hours):
        hours = max(hours, _first_hour(lambda t: min(f(t) for f in limits) + readings_per_h * t >= n))
    on_acks = min(n, math.floor(hours * readings_per_h)) if math.isfinite(hours) else 0
    requests = n - on_acks
    return {
        "chunks": n,
        "chunk_bytes": chunk,
        "requests": requests,
        "chunks_on_acks": on_acks,
        "airtime_up_s": round(requests * request_ms / 1000, 3),
        "airtime_down_s": round((requests * chunk_ms + on_acks * (chunk_ms - ack_ms)) / 1000, 3),
        "seconds": round(hours * 3600, 1) if math.isfinite(hours) else None,
        "energy_mah": round((requests * request_mas + on_acks * ack_mas) / 3600, 2)
        if power is not None
        else None,
        "pace": {"gap_s": paced.gap_s, "burst": paced.burst} if paced is not None else None,
    }


def _first_hour(done) -> float:
    """The least T (hours) with ``done(T)``, for a ``done`` that stays true once true."""
    lo, hi = 0.0, 1.0
    while not done(hi):
        lo, hi = hi, hi * 2
        if hi > 24 * 365 * 10:
            return math.inf
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if done(mid) else (mid, hi)
    return hi
