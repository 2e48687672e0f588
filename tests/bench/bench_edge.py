"""Edge core benchmark (issue 4).

- ingest: durable group commit (one fsync'd transaction per batch, as the daemon does)
  against one transaction per frame (the baseline), frames/s and the ratio;
- links: end to end through 8 pty links (CPython module peers running the link Session,
  3 nodes each) into the daemon, as a fraction of a 921,600 baud line, and the ACK latency
  a module sees (p50/p99, from handing the frame to its link to the ACK);
- footprint: the daemon's RSS with 1,000 registered devices and N readings in the database
  (10 M in full mode), against the same daemon on an empty database, and bytes of disk per
  reading.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge import config as config_mod
from edge.codecs import CodecRunner, lpp
from edge.daemon import Daemon
from edge.ingest import Ingestor
from edge.ingest.writer import Item
from edge.link.frame import FrameType, encode
from edge.radio import build_serial_uplink, build_uplink
from edge.store import connect, migrate, transaction
from tests.edge.edge_module_peer import ModulePeer, Node

BAUD = 921_600
LINE_BYTES_PER_S = BAUD / 10  # 8N1
REPO = Path(__file__).resolve().parents[2]
STANDARD = [(1, "temperature", 21.5), (2, "humidity", 48.5), (3, "voltage", 3.71)]


def _device(i: int) -> str:
    return f"{i:016x}"


def _fresh_db(path: Path, devices: int) -> dict[str, bytes]:
    conn = connect(path)
    migrate(conn)
    keys = {}
    with transaction(conn):
        for i in range(1, devices + 1):
            key = bytes(random.Random(i).randbytes(16))
            conn.execute("INSERT INTO devices (id, key, created_at) VALUES (?, ?, 0)", (_device(i), key))
            keys[_device(i)] = key
    conn.close()
    return keys


def _payloads(keys: dict[str, bytes], n: int, start: int = 1) -> list[bytes]:
    devs = list(keys)
    out = []
    for i in range(n):
        dev = devs[i % len(devs)]
        fcnt = start + i // len(devs)
        out.append(build_serial_uplink(build_uplink(keys[dev], dev, fcnt, 1, lpp.encode(STANDARD)), rssi=-90))
    return out


def bench_ingest(work: Path, quick: bool) -> dict:
    single_n, group_n, batch = (300, 3000, 64) if quick else (2000, 30000, 64)
    results = {}
    for mode, n in (("one_transaction_per_frame", single_n), ("group_commit", group_n)):
        path = work / f"ingest-{mode}.db"
        keys = _fresh_db(path, 50)
        payloads = _payloads(keys, n)
        conn = connect(path)
        codecs = CodecRunner()
        ingest = Ingestor(conn, codecs=codecs)
        acks = []
        size = 1 if mode == "one_transaction_per_frame" else batch
        t0 = time.perf_counter()
        for i in range(0, n, size):
            ingest.process_batch([Item(p, "bench", acks.append) for p in payloads[i : i + size]])
        elapsed = time.perf_counter() - t0
        assert len(acks) == n and all(a[0] == 0 for a in acks)
        results[mode] = {"frames": n, "seconds": elapsed, "frames_per_s": n / elapsed}
        conn.close()
        codecs.close()
    results["batch_frames"] = batch
    results["ratio_group_vs_single"] = (
        results["group_commit"]["frames_per_s"] / results["one_transaction_per_frame"]["frames_per_s"]
    )
    return results


def _peer_farm(pipe, groups: list[tuple[str, list[tuple[str, bytes]]]], per_link: int) -> None:
    """In its own process (so the module side does not share the edge's GIL): one ModulePeer per
    link; report the pty paths, wait for "go", send everything, report ACK figures."""
    peers = [ModulePeer(bridge, [Node(d, k) for d, k in nodes]).start() for bridge, nodes in groups]
    pipe.send([p.path for p in peers])
    deadline = time.monotonic() + 30
    while not all(p.up for p in peers) and time.monotonic() < deadline:
        time.sleep(0.01)
    pipe.recv()  # go
    for p in peers:
        devs = list(p.nodes)
        for i in range(per_link):
            p.add_reading(devs[i % len(devs)], values=STANDARD)
    t0 = time.perf_counter()
    total = len(peers) * per_link
    deadline = time.monotonic() + 300
    while sum(len(p.log.acked) for p in peers) < total and time.monotonic() < deadline:
        time.sleep(0.002)
    elapsed = time.perf_counter() - t0
    pipe.send(
        {
            "acked": sum(len(p.log.acked) for p in peers),
            "seconds": elapsed,
            "latencies": [x for p in peers for x in p.log.ack_latency],
        }
    )
    pipe.recv()  # done
    for p in peers:
        p.close()


def bench_links(work: Path, quick: bool) -> dict:
    import multiprocessing

    links, per_link = 8, (300 if quick else 3000)
    path = work / "links.db"
    keys = _fresh_db(path, links * 3)
    devs = list(keys)
    groups = [(f"{0xB000 + i:016x}", [(d, keys[d]) for d in devs[3 * i : 3 * i + 3]]) for i in range(links)]
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe()
    farm = ctx.Process(target=_peer_farm, args=(there, groups, per_link), daemon=True)
    farm.start()
    paths = here.recv()
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(path), "services": False},
            "link": {"ports": paths, "discover": False, "baudrate": BAUD},
            "http": {"enabled": False},
            "log": {"level": "WARNING"},
        }
    )
    daemon = Daemon(cfg).start()
    try:
        deadline = time.monotonic() + 30
        while daemon.manager.links_up() < links and time.monotonic() < deadline:
            time.sleep(0.01)
        here.send("go")
        result = here.recv()
        here.send("done")
    finally:
        daemon.stop()
        farm.join(30)
    done, elapsed = result["acked"], result["seconds"]
    latencies = sorted(result["latencies"])
    # bytes on the wire per reading, module -> edge (the UPLINK frame), and edge -> module (its ACK)
    sample = _payloads({devs[0]: keys[devs[0]]}, 1)[0]
    up_bytes = len(encode(FrameType.UPLINK, 1, sample))
    ack_bytes = len(encode(FrameType.ACK, 1, b"\x00" + bytes(22)))
    per_link_fps = done / elapsed / links
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 100 else [float("nan")] * 99
    return {
        "links": links,
        "frames": done,
        "seconds": elapsed,
        "frames_per_s": done / elapsed,
        "frames_per_s_per_link": per_link_fps,
        "uplink_frame_bytes": up_bytes,
        "ack_frame_bytes": ack_bytes,
        "line_rate_frames_per_s_per_link": LINE_BYTES_PER_S / up_bytes,
        "fraction_of_line_rate": per_link_fps * up_bytes / LINE_BYTES_PER_S,
        "ack_latency_ms_p50": q[49] * 1000,
        "ack_latency_ms_p99": q[98] * 1000,
        "note": "module peers in their own process; pty links have no baud rate, the fraction is of what "
        "a 921,600 baud UART would carry",
    }


def _fill_readings(path: Path, devices: int, n: int) -> None:
    """Readings as ingest stores them (decoded JSON, raw, radio metadata), written in bulk."""
    conn = connect(path)
    conn.execute("PRAGMA synchronous=OFF")  # bulk set-up only; the daemon measured later uses FULL
    raw = lpp.encode(STANDARD)
    decoded = json.dumps(lpp.decode(raw), separators=(",", ":"), ensure_ascii=False)
    per_device = -(-n // devices)
    chunk = 200_000
    rows = (
        (
            _device(1 + i % devices),
            1 + i // devices,
            1_700_000_000.0 + i * 0.3,
            -90 - i % 30,
            7.25,
            raw,
            decoded,
        )
        for i in range(n)
    )
    while True:
        batch = [r for _, r in zip(range(chunk), rows, strict=False)]
        if not batch:
            break
        with transaction(conn):
            conn.executemany(
                "INSERT INTO readings (device_id, fcnt, port, received_at, rssi, snr, bridge_id, raw, decoded)"
                " VALUES (?, ?, 1, ?, ?, ?, '000000000000b000', ?, ?)",
                batch,
            )
    with transaction(conn):
        conn.execute("UPDATE devices SET last_fcnt = ?", (per_device,))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _daemon_rss(path: Path, keys: dict[str, bytes], work: Path, start_fcnt: int, frames: int) -> dict:
    """Run the daemon as a process on ``path``, ingest ``frames`` through one link, read its RSS."""
    devs = list(keys)[:3]
    peer = ModulePeer("000000000000b000", [Node(d, keys[d], next_fcnt=start_fcnt) for d in devs]).start()
    cfg = work / f"rss-{path.stem}.toml"
    cfg.write_text(
        f'[edge]\ndb = "{path}"\nservices = false\n[link]\nports = ["{peer.path}"]\ndiscover = false\n'
        '[http]\nenabled = false\n[log]\nlevel = "WARNING"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.daemon", "--config", str(cfg)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not peer.up and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(frames):
            peer.add_reading(devs[i % 3])
        while len(peer.log.acked) < frames and time.monotonic() < deadline + 120:
            time.sleep(0.01)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        hwm_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        peer.close()
    return {"rss_mb": rss_kb / 1024, "peak_rss_mb": hwm_kb / 1024, "frames_ingested": len(peer.log.acked)}


def bench_footprint(work: Path, quick: bool) -> dict:
    devices, n = 1000, (200_000 if quick else 10_000_000)
    empty = work / "empty.db"
    keys = _fresh_db(empty, devices)
    full = work / "full.db"
    _fresh_db(full, devices)
    t0 = time.perf_counter()
    _fill_readings(full, devices, n)
    fill_s = time.perf_counter() - t0
    size = full.stat().st_size
    empty_size = empty.stat().st_size
    frames = 300
    start_fcnt = -(-n // devices) + 1
    base = _daemon_rss(empty, keys, work, 1, frames)
    loaded = _daemon_rss(full, keys, work, start_fcnt, frames)
    return {
        "devices": devices,
        "readings": n,
        "fill_seconds": fill_s,
        "db_bytes": size,
        "bytes_per_reading": (size - empty_size) / n,
        "rss_mb_empty_db": base["rss_mb"],
        "rss_mb_with_readings": loaded["rss_mb"],
        "peak_rss_mb_with_readings": loaded["peak_rss_mb"],
        "rss_ratio_vs_empty": loaded["rss_mb"] / base["rss_mb"],
        "frames_ingested_while_measuring": loaded["frames_ingested"],
    }


def run(out_dir: Path, quick: bool) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-edge-", dir=os.environ.get("FIELDPOST_BENCH_TMP")) as tmp:
        work = Path(tmp)
        figures = {
            "quick": quick,
            "ingest": bench_ingest(work, quick),
            "links": bench_links(work, quick),
            "footprint": bench_footprint(work, quick),
        }
    (out_dir / "edge.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures


if __name__ == "__main__":
    quick = "--full" not in sys.argv
    print(json.dumps(run(Path("build/bench"), quick), indent=2))
