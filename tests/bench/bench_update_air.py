"""Firmware update of one node over the air (edge/fuota/air.py, firmware/fp/update_air.py): time and
airtime for a typical delta and a whole bundle, at SF7 (EU868 DR5) and SF12 (DR0), against the same
bytes sent the plain way, one confirmed downlink per reading at the node's normal interval.

Both sides run the real code: the node's receiver under micropython (a persistent process,
tests/firmware/mp/update_air_node.py: every chunk opened with the session keys, written to flash,
recorded in its bitmap; the package hashed when complete), the edge's answers from a real SQLite
job (edge.fuota.air.answer, frames built by the edge's LoRaWAN session). The air between them is
simulated, in simulated time, with 10 % loss each way and both duty cycles enforced as the firmware
does (EU868 1 % per sliding hour): the node's requests keep their own account, limited to the budget
less what its readings need (a reading every 5 minutes, x1.5), the bridge drops a downlink it has no
budget for; a lost request or chunk costs the node its receive window and a retry (retry_base 8 s).

Figures (``update_air.json``), per package (``delta``, ``full``) and SF:
- ``fragment``: ``hours`` (and ``seconds``) of simulated time until the package is complete on the node (from the
  update queued: the offer rides on the next reading's ACK), ``airtime_up_s`` (requests),
  ``airtime_down_s`` (the bridge: chunks answering requests, and chunks or offers on reading ACKs
  over the bare ACK they replace), ``requests``, ``chunks`` (both ways of sending); ``pace``: the
  energy pace the edge gives as shipped ([updates] energy_mah_day, kept by the node's own code)
  and how often it held a request back; ``energy_mah``: the node's charge for the update
  (edge/fuota/energy.py, the board's datasheet currents: each exchange, and each chunk on an ACK
  over the bare ACK);
- ``baseline_per_reading``: the same chunks, each on the ACK of one reading (the node's interval),
  resent on the next reading when lost: ``hours``, ``airtime_down_s`` (over the ACKs it replaces),
  ``energy_mah`` (the same currents: each chunk's longer reception);
- ``wall_s``: real seconds per simulated update of each side (median of runs for >= MIN_SECONDS,
  both sides through the same micropython receiver): what the real code costs, not the air.
Not counted: the staging and swap at the next boot (bench ``update.json`` times them for bridges).

Run alone: ``python -m tests.bench.bench_update_air [--quick] [--out DIR]``.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from edge import registry
from edge.fuota import air as fuota_air
from edge.fuota import energy, jobs, package, updates
from edge.fuota.config import UpdatesSection
from edge.lorawan.server import Session
from edge.store import connect, migrate
from edge.tools import build_firmware
from tests.firmware import updatekit
from tests.firmware.conftest import MICROPYTHON, MP_SCRIPTS
from tests.firmware.modules import board_heap

MIN_SECONDS = 5.0
NODE = "0123456789abcd01"
ABP = (0x26011BDA, bytes([0x22] * 16), bytes([0x33] * 16))  # update_air_node.py's session
DUTY = 0.01
LOSS = 0.1
INTERVAL_S = 300
RX_WINDOW_S = 3
RETRY_BASE_S = 8
RATES = {7: (5, 222), 12: (0, 51)}  # SF -> (EU868 data rate, largest MAC payload)
ENERGY_MAH_DAY = UpdatesSection.energy_mah_day  # the shipped [updates] allowance


class _HourAccount:
    """Airtime in the last hour (a sliding window: the firmware's minute buckets are stricter)."""

    def __init__(self):
        self._items: collections.deque[tuple[float, float]] = collections.deque()
        self._sum = 0.0

    def used(self, now: float) -> float:
        while self._items and self._items[0][0] <= now - 3600:
            self._sum -= self._items.popleft()[1]
        return self._sum

    def add(self, now: float, toa: float) -> None:
        self._items.append((now, toa))
        self._sum += toa


class _Node:
    """The node's receiver under micropython, on a fresh copy of the v1 bundle."""

    def __init__(self, work: Path, bundles, dr: int):
        self.root = work / "flash"
        shutil.copytree(bundles["v1"], self.root)
        cwd = work / "node"
        cwd.mkdir()
        self.proc = subprocess.Popen(
            [
                str(MICROPYTHON),
                "-X",
                f"heapsize={board_heap('unix')}",
                str(MP_SCRIPTS / "update_air_node.py"),
                str(dr),
            ],
            cwd=cwd,
            env=dict(os.environ, MICROPYPATH=f"{self.root}:{MP_SCRIPTS}"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the node's process ended ({self.proc.wait()})")
        return line

    def _ask(self, text: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        return self._line()

    def request(self) -> bytes | None:
        said = self._ask("r").split()[1]
        return None if said == "-" else bytes.fromhex(said)

    def paced_s(self, now: float) -> float:
        """Seconds the energy pace holds the next request back (the firmware's own GCRA)."""
        return int(self._ask(f"p {int(now * 1000)}").split()[1]) / 1000

    def spend(self, now: float) -> None:
        self._ask(f"s {int(now * 1000)}")

    def hear(self, frame: bytes) -> str:
        self.said = self._ask("d " + frame.hex())
        return self.said

    said = "ok 0 -"

    def hear_state(self) -> str:
        """The updater's state after the last frame heard ("received": the package is whole)."""
        return self.said.split()[2]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _pace(pkg: bytes, sf: int) -> tuple[int, int] | None:
    """The energy pace `fieldpost modules update` gives this node as shipped ([updates]
    energy_mah_day's default, the unix board's datasheet currents)."""
    est = updates.air_estimate("unix", len(pkg), RATES[sf][0], INTERVAL_S, energy_mah_day=ENERGY_MAH_DAY)
    assert est is not None
    return (est["pace"]["gap_s"], est["pace"]["burst"]) if est["pace"] else None


def _charges(sf: int) -> tuple[float, float]:
    """mA x s of a fragment exchange and of a chunk on a reading's ACK (over the bare ACK), from the
    unix board's datasheet currents (edge/fuota/energy.py, what the estimate counts)."""
    power = build_firmware.load_profile("unix")["power"]
    chunk = min(255, RATES[sf][1] - 13 - 2)
    request_ms = fuota_air.time_on_air_ms(13 + fuota_air.REQUEST_SIZE, sf)
    chunk_ms = fuota_air.time_on_air_ms(13 + 2 + chunk, sf)
    return (
        energy.exchange_mas(power, tx_dbm=14, request_ms=request_ms, chunk_ms=chunk_ms),
        energy.ack_chunk_mas(power, chunk_ms=chunk_ms, ack_ms=fuota_air.time_on_air_ms(13, sf)),
    )


def _edge(work: Path, pkg: bytes, *, offered: bool = True, pace: tuple[int, int] | None = None):
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    conn = connect(work / "edge.db")
    migrate(conn)
    registry.add_device(conn, NODE, key=bytes(16), board="unix", actor="bench", now=0)
    path = work / "package.fpup"
    path.write_bytes(pkg)
    digest = hashlib.sha256(pkg).hexdigest()
    job_id = jobs.queue(
        conn,
        NODE,
        board="unix",
        version=updatekit.V2,
        from_version=updatekit.V1,
        package=str(path),
        sha256=digest,
        size=len(pkg),
        now=0,
        transport="air",
        pace=pace,
    )
    if offered:
        jobs.progress(conn, job_id, 0, now=0)
    conn.commit()
    session = Session(NODE, *ABP, base=0, fcnt_up=0, fcnt_down=0)
    job = jobs.get(conn, job_id)
    assert job is not None
    return conn, session, fuota_air.offer_payload(job)


def _fragment(work: Path, bundles, pkg: bytes, sf: int, seed: int) -> dict:
    """The fragment session, simulated air, real code on both sides."""
    dr, _ = RATES[sf]
    pace = _pace(pkg, sf)
    conn, session, _ = _edge(work, pkg, offered=False, pace=pace)
    node = _Node(work, bundles, dr)
    rng = random.Random(seed)
    toa = lambda n: fuota_air.time_on_air_ms(n, sf) / 1000  # noqa: E731 - a one-line helper
    node_all, node_update, bridge = _HourAccount(), _HourAccount(), _HourAccount()
    reading, ack, request = toa(24), toa(13), toa(13 + fuota_air.REQUEST_SIZE)
    room = DUTY * 3600 - reading * 1.5 * 3600 / INTERVAL_S
    t, next_reading, attempts = 0.0, 0.0, 0
    up = down = 0.0
    requests = chunks = on_acks = paced_waits = 0
    try:
        while True:
            while next_reading <= t:  # readings go first; their ACKs carry the offer or a chunk
                at = next_reading
                next_reading += INTERVAL_S
                node_all.add(at, reading)
                if rng.random() < LOSS:
                    continue  # the reading was lost: no ACK (its resend is left out)
                fport, body = fuota_air.offers(conn, {NODE}, now=at)[NODE]
                frame = session.downlink(ack=True, fport=fport, payload=body)
                if bridge.used(at) + toa(len(frame)) > DUTY * 3600:
                    continue
                bridge.add(at, toa(len(frame)))
                down += toa(len(frame)) - ack  # over the bare ACK the reading gets anyway
                chunks += fport == fuota_air.PORT_FRAG
                on_acks += fport == fuota_air.PORT_FRAG
                if rng.random() >= LOSS:
                    node.hear(frame)
            payload = node.request()
            if payload is None:
                if node.hear_state() == "received":
                    break
                t = next_reading  # no offer heard yet: the next reading's ACK brings it
                continue
            held = node.paced_s(t)
            if held:
                paced_waits += 1
                t = min(t + held, next_reading)  # the battery's allowance (readings go on)
                continue
            if node_update.used(t) + request > room or node_all.used(t) + request > DUTY * 3600:
                t += 60  # the firmware looks again a budget bucket later
                continue
            node.spend(t)
            node_all.add(t, request)
            node_update.add(t, request)
            up += request
            requests += 1
            t += request
            answered = False
            if rng.random() >= LOSS:
                fport, body = fuota_air.answer(conn, NODE, payload, now=t)
                frame = session.downlink(ack=False, fport=fport, payload=body)
                if bridge.used(t) + toa(len(frame)) <= DUTY * 3600:
                    bridge.add(t, toa(len(frame)))
                    down += toa(len(frame))
                    chunks += 1
                    if rng.random() >= LOSS:
                        node.hear(frame)
                        answered = True
            if answered:
                attempts = 0
                t += 1 + toa(len(frame))  # RX1 opens a second after the request
            else:
                attempts += 1
                t += RX_WINDOW_S + min(RETRY_BASE_S * 2 ** (attempts - 1), 900) * (0.5 + rng.random())
    finally:
        node.close()
        conn.close()
    exchange, ack_chunk = _charges(sf)
    return {
        "hours": round(t / 3600, 2),
        "seconds": round(t, 1),
        "airtime_up_s": round(up, 1),
        "airtime_down_s": round(down, 1),
        "requests": requests,
        "chunks": chunks,
        "pace": {"gap_s": pace[0], "burst": pace[1], "held": paced_waits} if pace else None,
        "energy_mah": round((requests * exchange + on_acks * ack_chunk) / 3600, 2),
    }


def _per_reading(work: Path, bundles, pkg: bytes, sf: int, seed: int) -> dict:
    """The baseline: each reading's ACK carries the next chunk instead of nothing (a confirmed
    downlink per uplink, at the node's interval); a chunk lost either way goes on the next one."""
    dr, max_payload = RATES[sf]
    conn, session, offer = _edge(work, pkg)
    conn.close()  # the baseline's chunks are cut here, not answered by the edge
    node = _Node(work, bundles, dr)
    rng = random.Random(seed)
    size = min(255, max_payload - 13 - 2)
    count = math.ceil(len(pkg) / size)
    toa = lambda n: fuota_air.time_on_air_ms(n, sf) / 1000  # noqa: E731 - a one-line helper
    bridge = _HourAccount()
    ack = toa(13)
    t, extra, readings, nxt = 0.0, 0.0, 0, 0
    node.hear(session.downlink(ack=True, fport=fuota_air.PORT, payload=offer))
    try:
        while nxt < count:
            readings += 1
            t = readings * INTERVAL_S
            if rng.random() < LOSS:
                continue  # the reading was lost: no ACK, no chunk
            frame = session.downlink(
                ack=True,
                fport=fuota_air.PORT_FRAG,
                payload=nxt.to_bytes(2, "big") + pkg[nxt * size : (nxt + 1) * size],
            )
            if bridge.used(t) + toa(len(frame)) > DUTY * 3600:
                continue
            bridge.add(t, toa(len(frame)))
            extra += toa(len(frame)) - ack
            if rng.random() < LOSS:
                continue
            node.hear(frame)
            nxt += 1
        assert node.request() is None  # all here, hashed and handed to the updater
    finally:
        node.close()
    _, ack_chunk = _charges(sf)
    return {
        "hours": round(t / 3600, 2),
        "airtime_down_s": round(extra, 1),
        "readings": readings,
        "energy_mah": round(count * ack_chunk / 3600, 2),  # each chunk heard once, on an ACK
    }


def _repeat(measure, minimum: float) -> tuple[dict, float]:
    """The figures of the first run (seed 0: the same in every bench run) and the median wall time
    of as many runs (seeds 0, 1, ...) as fill ``minimum`` seconds."""
    samples, results = [], []
    while sum(samples) < minimum:
        start = time.perf_counter()
        results.append(measure(len(samples)))
        samples.append(time.perf_counter() - start)
    samples.sort()
    return results[0], round(samples[len(samples) // 2], 3)


def run(out_dir: Path, quick: bool) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    minimum = 1.0 if quick else MIN_SECONDS
    figures: dict = {"quick": quick, "loss": LOSS, "duty": DUTY, "reading_interval_s": INTERVAL_S}
    with tempfile.TemporaryDirectory(prefix="bench-update-air-") as tmp:
        work = Path(tmp)
        bundles = updatekit.build_bundles(work / "bundles")
        v1 = package.Manifest.from_dict(json.loads((bundles["v1"] / "manifest.json").read_text()))
        v2 = package.Manifest.from_dict(json.loads((bundles["v2"] / "manifest.json").read_text()))
        contents = {p: (bundles["v2"] / p).read_bytes() for p in v2.files}
        packages = {
            "delta": package.pack(package.plan(v2, v1), contents),
            "full": package.pack(package.plan(v2, v1, full=True), contents),
        }
        figures["package_bytes"] = {k: len(v) for k, v in packages.items()}
        for kind, pkg in packages.items():
            for sf in (7, 12):
                if quick and kind == "full" and sf == 12:
                    continue
                frag, frag_wall = _repeat(
                    lambda n, p=pkg, s=sf: _fragment(work / "f", bundles, p, s, n), minimum
                )
                base, base_wall = _repeat(
                    lambda n, p=pkg, s=sf: _per_reading(work / "b", bundles, p, s, n), minimum
                )
                figures[f"{kind}_sf{sf}"] = {
                    "fragment": frag,
                    "baseline_per_reading": base,
                    "wall_s": {"fragment": frag_wall, "baseline": base_wall},
                    "faster_than_baseline": round(base["hours"] / frag["hours"], 1)
                    if frag["hours"]
                    else None,
                }
    (out_dir / "update_air.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures
