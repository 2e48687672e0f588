"""Edge store and link benchmark (issue 11). Every figure stands next to a baseline measured in the
same run, on the same readings, with the same durability (WAL, synchronous=FULL).

- ``store``: the ingest writer's real path (``Ingestor.process_batch``: parse, MIC, dedupe, insert,
  device state, ACK payloads, one fsync'd commit per batch of 64) on 1,000 registered devices, in
  frames/s, against a raw ``executemany`` of the very rows it stored into a single table, same batch
  size, same durability (``store_vs_raw_insert``; goal >= 0.5). Each side runs >= 5 s.
- ``bytes_per_reading``: every table and index of the database (dbstat, after a checkpoint) grown by
  the readings the writer stored, per reading (goal <= 48), against the schema a user would write
  first (device id text, fcnt, time, payload and radio metadata, a unique (device, fcnt) key) holding
  the same readings.
- ``links``: ``fieldpost run`` as shipped (its own process, services on: rules, retention, the panel;
  no cloud configured, as the default configuration) with 8 pty links, CPython module peers (3 nodes
  each) in their own process sending as fast as each link's window allows, for >= 5 s; readings/s
  as a fraction of what 8 UARTs at 921,600 baud carry (``links_line_rate``; goal >= 1.0) and the
  ACK latency a module sees, p50/p99 (goal p99 <= 25 ms).
- ``footprint``: the RSS of ``fieldpost run`` as shipped with 1,000 devices and 10 M readings (quick:
  200,000) after ingesting through a link (``rss_mb``; goal <= 60), against the same daemon on an
  empty database.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge.codecs import lpp
from edge.ingest import Ingestor
from edge.ingest.writer import Item
from edge.link.frame import FrameType, encode
from edge.radio import build_serial_uplink
from edge.store import connect, cursor, migrate, numbers, readings, transaction
from tests.edge.edge_module_peer import ModulePeer, Node, activate

BAUD = 921_600
LINE_BYTES_PER_S = BAUD / 10  # 8N1
REPO = Path(__file__).resolve().parents[2]
MIN_SECONDS = 5.0
BATCH = 64
ROUND_BATCHES = 50  # batches per turn of each side in the store benchmark
DEVICES = 1000


def _device(i: int) -> str:
    return f"{i:016x}"


def _key(i: int) -> bytes:
    return random.Random(i).randbytes(16)


def _values(rng: random.Random, state: dict[str, float]) -> list[tuple[int, str, float]]:
    """A node's standard reading (docs/radio.md), drifting as a real sensor's does."""
    state["t"] = min(45.0, max(-20.0, state["t"] + rng.choice((-0.1, 0.0, 0.0, 0.1))))
    state["h"] = min(100.0, max(0.0, state["h"] + rng.choice((-0.5, 0.0, 0.5))))
    state["v"] = max(3.0, state["v"] - rng.choice((0.0, 0.0, 0.0, 0.01)))
    return [
        (1, "temperature", round(state["t"], 1)),
        (2, "humidity", state["h"]),
        (3, "voltage", round(state["v"], 2)),
    ]


def _registered_db(path: Path, devices: int) -> dict[str, bytes]:
    conn = connect(path)
    migrate(conn)
    keys = {}
    with transaction(conn):
        for i in range(1, devices + 1):
            conn.execute("INSERT INTO devices (id, key, created_at) VALUES (?, ?, 0)", (_device(i), _key(i)))
            numbers.ensure(conn, _device(i))
            keys[_device(i)] = _key(i)
    activate(conn, [Node(d, k) for d, k in keys.items()])  # LoRaWAN nodes, by ABP
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return keys


class _Uplinks:
    """UPLINK payloads round-robin over the devices, each device's counter and sensor moving on."""

    def __init__(self, keys: dict[str, bytes], seed: int = 1):
        self.nodes = {d: Node(d, k) for d, k in keys.items()}
        self.devices = list(keys)
        self.rng = random.Random(seed)
        self.fcnt = dict.fromkeys(self.devices, 0)
        self.state = {d: {"t": 15 + self.rng.random() * 10, "h": 50.0, "v": 3.7} for d in self.devices}
        self.i = 0

    def take(self, n: int) -> list[bytes]:
        out = []
        for _ in range(n):
            dev = self.devices[self.i % len(self.devices)]
            self.i += 1
            self.fcnt[dev] += 1
            payload = lpp.encode(_values(self.rng, self.state[dev]))
            frame = self.nodes[dev].frame(self.fcnt[dev], 1, payload)
            out.append(
                build_serial_uplink(
                    frame,
                    rssi=-70 - self.rng.randrange(40),
                    snr=self.rng.randrange(-40, 40) / 4,
                    rx_time=int(time.time()),
                )
            )
        return out


def _used_bytes_by_table(conn: sqlite3.Connection) -> dict[str, int]:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {name: size for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")}


def bench_store(work: Path, quick: bool) -> dict:
    path = work / "store.db"
    keys = _registered_db(path, DEVICES)
    conn = connect(path)
    empty = _used_bytes_by_table(conn)
    ingest = Ingestor(conn)
    uplinks = _Uplinks(keys)
    raw = connect(work / "raw.db")
    raw.execute(
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, received_ms INTEGER, port INTEGER, rssi INTEGER,"
        " snr_q INTEGER, bridge INTEGER, skew_s INTEGER, raw BLOB, age_s INTEGER)"
    )
    acks: list[bytes] = []
    stored = inserted = 0
    store_s = raw_s = 0.0
    # The two sides take turns, a round of each at a time, so both see the same machine (other
    # processes' load varies over a run of minutes).
    target = 50_000 if quick else 500_000
    while store_s < MIN_SECONDS or raw_s < MIN_SECONDS or stored < target:
        # the frames of a round are made before its clock starts: making them is the modules' work
        round_items = [
            [Item(p, "000000000000b000", acks.append) for p in uplinks.take(BATCH)]
            for _ in range(ROUND_BATCHES)
        ]
        t0 = time.perf_counter()
        first_new = stored
        for items in round_items:
            outcomes = ingest.process_batch(items)
            stored += sum(1 for o in outcomes if o.reading is not None)
        store_s += time.perf_counter() - t0
        # the rows the writer just stored, inserted the plain way: same rows, same batch size, one
        # table, executemany, the same durability (WAL, synchronous=FULL)
        rows = conn.execute(
            f"SELECT {readings.COLUMNS} FROM readings ORDER BY received_ms DESC, id DESC LIMIT ?",
            (stored - first_new,),
        ).fetchall()[::-1]
        t0 = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            with transaction(raw):
                raw.executemany(
                    "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[i : i + BATCH]
                )
        raw_s += time.perf_counter() - t0
        inserted += len(rows)
    assert len(acks) == stored and all(a[0] == 0 for a in acks), "every frame must be stored and ACKed"
    raw.close()
    used = _used_bytes_by_table(conn)
    rows = conn.execute(f"SELECT {readings.COLUMNS} FROM readings ORDER BY received_ms, id").fetchall()
    ids = numbers.all_numbers(conn)
    conn.close()

    # What a user would write first, holding the same readings.
    naive = connect(work / "naive.db")
    naive.execute(
        "CREATE TABLE readings (device_id TEXT NOT NULL, fcnt INTEGER NOT NULL, received_at REAL NOT NULL,"
        " port INTEGER NOT NULL, rssi INTEGER, snr REAL, bridge_id TEXT, raw BLOB NOT NULL,"
        " UNIQUE (device_id, fcnt))"
    )
    with transaction(naive):
        naive.executemany(
            "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (ids[r[0] >> 32], r[0] & 0xFFFFFFFF, r[1] / 1000, r[2], r[3], r[4] / 4, ids.get(r[5]), r[7])
                for r in rows
            ),
        )
    naive_used = _used_bytes_by_table(naive)
    naive.close()

    grown = sum(used.values()) - sum(empty.values())
    store_fps, raw_fps = stored / store_s, inserted / raw_s
    return {
        "devices": DEVICES,
        "batch_frames": BATCH,
        "store": {"frames": stored, "seconds": round(store_s, 2), "frames_per_s": round(store_fps)},
        "raw_insert_baseline": {"rows": inserted, "seconds": round(raw_s, 2), "rows_per_s": round(raw_fps)},
        "store_vs_raw_insert": round(store_fps / raw_fps, 3),
        "bytes_per_reading": round(grown / stored, 1),
        "bytes_per_reading_by_table": {
            k: round((used.get(k, 0) - empty.get(k, 0)) / stored, 1)
            for k in used
            if used.get(k, 0) != empty.get(k, 0)
        },
        "naive_schema_bytes_per_reading": round(sum(naive_used.values()) / stored, 1),
        "goals": {
            "store_vs_raw_insert": ">= 0.5",
            "bytes_per_reading": "<= 48",
            "met_store_vs_raw_insert": store_fps / raw_fps >= 0.5,
            "met_bytes_per_reading": grown / stored <= 48,
        },
    }


# ------------------------------------------------------------------ 8 links, the daemon as shipped


def _peer_farm(pipe, groups: list[tuple[str, list[tuple[str, bytes]]]], per_link: int) -> None:
    """In its own process (the module side must not share the edge's GIL): one ModulePeer per link;
    report the pty paths, queue every frame, wait for "go", report ACK figures."""
    peers = [ModulePeer(bridge, [Node(d, k) for d, k in nodes]).start() for bridge, nodes in groups]
    for p in peers:
        devs = list(p.nodes)
        rng = random.Random(p.bridge_id)
        state = {d: {"t": 20.0, "h": 50.0, "v": 3.7} for d in devs}
        for i in range(per_link):  # built here, before "go": the module side's work is not timed
            dev = devs[i % len(devs)]
            p.add_reading(dev, values=_values(rng, state[dev]))
    pipe.send([p.path for p in peers])
    pipe.recv()  # go: the daemon is running and its links are up
    t0 = time.perf_counter()
    total = len(peers) * per_link
    deadline = time.monotonic() + 600
    while sum(len(p.log.acked) for p in peers) < total and time.monotonic() < deadline:
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    pipe.send(
        {
            "acked": sum(len(p.log.acked) for p in peers),
            "seconds": elapsed,
            "latencies": [x for p in peers for x in p.log.ack_latency],
            "busy_nacks": sum(p.log.busy_nacks_rx for p in peers),
        }
    )
    pipe.recv()  # done
    for p in peers:
        p.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shipped_config(work: Path, db: Path, ports: list[str], name: str) -> Path:
    """The default configuration plus what a site sets: its links, and where the panel and status
    listen (free loopback ports here). Services on, no cloud configured."""
    path = work / f"{name}.toml"
    path.write_text(
        f'[edge]\ndb = "{db}"\n'
        f"[link]\nports = {json.dumps(ports)}\ndiscover = false\nbaudrate = {BAUD}\n"
        f"[http]\nport = {_free_port()}\n"
        f'[webui]\nhost = "127.0.0.1"\nport = {_free_port()}\n'
        '[log]\nlevel = "WARNING"\n'
    )
    return path


def _start_daemon(config: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "--config", str(config), "run"],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _links_up(db: Path, n: int, timeout: float) -> bool:
    """Each link is up once the daemon recorded its bridge's HELLO (firmware "peer") in devices."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                up = conn.execute("SELECT count(*) FROM devices WHERE firmware = 'peer'").fetchone()[0]
            finally:
                conn.close()
            if up >= n:
                return True
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    return False


def bench_links(work: Path, quick: bool) -> dict:
    links, nodes_per_link = 8, 3
    per_link = 12_000  # enough for >= 5 s at line rate (about 2,000 readings/s per link)
    db = work / "links.db"
    keys = _registered_db(db, links * nodes_per_link)
    bridges = [f"{0xB000 + i:016x}" for i in range(links)]
    conn = connect(db)
    with transaction(conn):
        for b in bridges:  # registered, so the daemon records each bridge's HELLO (firmware "peer")
            conn.execute(
                "INSERT INTO devices (id, key, created_at, role) VALUES (?, ?, 0, 'bridge')", (b, bytes(16))
            )
    conn.close()
    devs = list(keys)
    groups = [(bridges[i], [(d, keys[d]) for d in devs[3 * i : 3 * i + 3]]) for i in range(links)]
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    farm = ctx.Process(target=_peer_farm, args=(there, groups, per_link), daemon=True)
    farm.start()
    paths = here.recv()
    daemon = _start_daemon(_shipped_config(work, db, paths, "links"), work / "links.log")
    try:
        if not _links_up(db, links, 60):
            raise RuntimeError(f"links did not come up: {(work / 'links.log').read_text()[-2000:]}")
        here.send("go")
        result = here.recv()
        here.send("done")
        rss = _rss(daemon.pid)
    finally:
        _stop(daemon)
        farm.join(30)
    done, elapsed = result["acked"], result["seconds"]
    latencies = sorted(result["latencies"])
    payload = lpp.encode(_values(random.Random(1), {"t": 20.0, "h": 50.0, "v": 3.7}))
    sample = build_serial_uplink(Node(devs[0], keys[devs[0]]).frame(1, 1, payload))
    up_bytes = len(encode(FrameType.UPLINK, 1, sample))
    ack_bytes = len(encode(FrameType.ACK, 1, b"\x00" + bytes(22)))
    per_link_fps = done / elapsed / links
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 100 else [float("nan")] * 99
    fraction = per_link_fps * up_bytes / LINE_BYTES_PER_S
    return {
        "links": links,
        "frames": done,
        "seconds": round(elapsed, 2),
        "frames_per_s": round(done / elapsed),
        "frames_per_s_per_link": round(per_link_fps),
        "uplink_frame_bytes": up_bytes,
        "ack_frame_bytes": ack_bytes,
        "line_rate_frames_per_s_per_link": round(LINE_BYTES_PER_S / up_bytes),
        "links_line_rate": round(fraction, 3),
        "ack_latency_ms_p50": round(q[49] * 1000, 2),
        "ack_latency_ms_p99": round(q[98] * 1000, 2),
        "busy_nacks": result["busy_nacks"],
        "daemon_rss_mb_after": round(rss, 1),
        "daemon": "fieldpost run, services on (rules, retention, panel), no cloud configured",
        "goals": {
            "links_line_rate": ">= 1.0",
            "ack_latency_ms_p99": "<= 25",
            "met_line_rate": fraction >= 1.0,
            "met_p99": q[98] * 1000 <= 25,
        },
        "note": "module peers in their own process; a pty has no baud rate, so the fraction is of what "
        "eight 921,600 baud UARTs would carry",
    }


# ------------------------------------------------------------------ RSS as shipped


def _proc_status(pid: int, field: str) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field + ":"))) / 1024


def _rss(pid: int) -> float:
    return _proc_status(pid, "VmRSS")


def _fill_readings(path: Path, n: int) -> None:
    """``n`` readings spread over the registered devices, as ingest stores them (bulk set-up), the
    older 90 % of each device's synced."""
    conn = connect(path)
    conn.execute("PRAGMA synchronous=OFF")  # set-up only; the daemon measured later uses FULL
    nums = sorted(numbers.all_numbers(conn))
    per_device = -(-n // len(nums))
    start_ms = round((time.time() - 30 * 86400) * 1000)
    rng = random.Random(3)
    payloads = [lpp.encode(_values(rng, {"t": 20.0, "h": 50.0, "v": 3.7})) for _ in range(512)]
    chunk = 200_000
    for first in range(0, n, chunk):
        rows = (
            (
                readings.reading_id(nums[i % len(nums)], 1 + i // len(nums)),
                start_ms + i * 250,
                1,
                -90 - i % 30,
                29,
                None,
                0,
                payloads[i % 512],
            )
            for i in range(first, min(n, first + chunk))
        )
        with transaction(conn):
            readings.insert_many(conn, rows)
    with transaction(conn):
        conn.execute("UPDATE devices SET last_fcnt = ?", (per_device,))
        cursor.advance(conn, {num: readings.reading_id(num, int(per_device * 0.9)) for num in nums})
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _daemon_rss(db: Path, keys: dict[str, bytes], work: Path, start_fcnt: int, frames: int) -> dict:
    """``fieldpost run`` as shipped on ``db``; ingest ``frames`` through one link; read its RSS."""
    devs = list(keys)[:3]
    peer = ModulePeer("000000000000b000", [Node(d, keys[d], next_fcnt=start_fcnt) for d in devs]).start()
    proc = _start_daemon(
        _shipped_config(work, db, [peer.path], f"rss-{db.stem}"), work / f"rss-{db.stem}.log"
    )
    try:
        deadline = time.monotonic() + 60
        while not peer.up and time.monotonic() < deadline:
            time.sleep(0.05)
        for i in range(frames):
            peer.add_reading(devs[i % 3])
        while len(peer.log.acked) < frames and time.monotonic() < deadline + 120:
            time.sleep(0.05)
        time.sleep(2)  # let the services settle (retention's first pass, the panel's warm-up)
        rss, hwm = _rss(proc.pid), _proc_status(proc.pid, "VmHWM")
    finally:
        _stop(proc)
        peer.close()
    return {"rss_mb": round(rss, 1), "peak_rss_mb": round(hwm, 1), "frames_ingested": len(peer.log.acked)}


def bench_footprint(work: Path, quick: bool) -> dict:
    n = 200_000 if quick else 10_000_000
    empty = work / "empty.db"
    keys = _registered_db(empty, DEVICES)
    full = work / "full.db"
    _registered_db(full, DEVICES)
    t0 = time.perf_counter()
    _fill_readings(full, n)
    fill_s = time.perf_counter() - t0
    frames = 300
    base = _daemon_rss(empty, keys, work, 1, frames)
    loaded = _daemon_rss(full, keys, work, -(-n // DEVICES) + 1, frames)
    return {
        "devices": DEVICES,
        "readings": n,
        "fill_seconds": round(fill_s, 1),
        "db_bytes": full.stat().st_size,
        "rss_mb": loaded["rss_mb"],
        "peak_rss_mb": loaded["peak_rss_mb"],
        "rss_mb_empty_db": base["rss_mb"],
        "frames_ingested_while_measuring": loaded["frames_ingested"],
        "daemon": "fieldpost run, services on (rules, retention, panel), no cloud configured",
        "goals": {"rss_mb": "<= 60", "met_rss": loaded["rss_mb"] <= 60},
    }


def run(out_dir: Path, quick: bool) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-edge-", dir=os.environ.get("FIELDPOST_BENCH_TMP")) as tmp:
        work = Path(tmp)
        figures = {
            "quick": quick,
            "store": bench_store(work, quick),
            "links": bench_links(work, quick),
            "footprint": bench_footprint(work, quick),
        }
    (out_dir / "edge.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures


def main() -> None:
    """``python -m tests.bench.bench_edge [--full] [--part=store|links|footprint]``: parts alone."""
    quick = "--full" not in sys.argv
    only = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--part=")]
    parts = {"store": bench_store, "links": bench_links, "footprint": bench_footprint}
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        for name, fn in parts.items():
            if not only or name in only:
                print(name, json.dumps(fn(Path(tmp), quick), indent=2), flush=True)


if __name__ == "__main__":
    main()
