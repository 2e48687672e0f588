"""LoRaWAN benchmarks (issue 14), each figure next to the Fieldpost v1 frame measured in the same run:

- bytes on the air per standard reading (11 bytes of Cayenne LPP) and for a status and an ACK;
- time on air of that reading at SF7, SF9 and SF12 (EU868, 125 kHz; the SX127x/SX126x datasheet formula);
- edge verify + decrypt per uplink (CPU µs over >= 5 s a side: parse, 32-bit counter, AES-CMAC MIC, AES payload), against
  v1's parse + HMAC-SHA256 MIC; and the whole ingest path per uplink (edge.ingest.process.handle_batch in
  transactions of 256 on a real SQLite file, synchronous=FULL, >= 5 s a side) for both frame kinds;
- a join on the virtual air: the real firmware (node + bridge under `micropython`, time scale 1) through the
  real edge ingest, wall time from the join request leaving the node to its join accept opened, next to
  the same node's first uplink-to-ACK round trip after it (the link's own latency).

Writes <out>/lorawan.json. Figures, not assertions."""

from __future__ import annotations

import statistics
import struct
import tempfile
import time
from pathlib import Path

from edge import radio, registry
from edge.ingest.process import handle_batch
from edge.lorawan import frames as F
from edge.lorawan.network import Network
from edge.lorawan.settings import LoRaWANSettings
from edge.store import connect, migrate, transaction
from edge.store.numbers import Numbers
from tests.firmware import air

READING = struct.pack(">BBhBBBBBh", 1, 0x67, 215, 2, 0x68, 97, 3, 0x02, 371)  # 21.5 °C, 48.5 %, 3.71 V
KEY = bytes(range(1, 17))
NWK, APP = bytes(range(17, 33)), bytes(range(33, 49))
DEVADDR = 0x260B1234
DEV = "0123456789abcdef"


def _sizes() -> dict:
    v1 = radio.build_uplink(KEY, DEV, 7, 1, READING)
    lw = F.build_data(F.CONFIRMED_UP, DEVADDR, 7, 1, READING, nwk_key=NWK, app_key=APP)
    ack_v1 = radio.build_downlink(KEY, DEV, 7)
    ack_lw = F.build_data(
        F.UNCONFIRMED_DOWN, DEVADDR, 7, None, b"", nwk_key=NWK, app_key=APP, fctrl=F.FCTRL_ACK
    )
    toa = {}
    for sf in (7, 9, 12):
        toa[f"sf{sf}_ms"] = {
            "lorawan": round(air.time_on_air_us(len(lw), sf) / 1000, 1),
            "baseline_v1": round(air.time_on_air_us(len(v1), sf) / 1000, 1),
        }
    return {
        "reading_bytes_on_air": {"lorawan": len(lw), "baseline_v1": len(v1), "payload": len(READING)},
        "overhead_bytes": {"lorawan": len(lw) - len(READING), "baseline_v1": len(v1) - len(READING)},
        "ack_bytes_on_air": {"lorawan": len(ack_lw), "baseline_v1": len(ack_v1)},
        "reading_time_on_air": toa,
    }


MIN_SECONDS = 5.0  # each side of a comparison measured at least this long


def _crypto_us(n: int) -> dict:
    """CPU per frame of each side, each over passes of the same ``n`` frames for >= MIN_SECONDS."""
    lw_frames = [
        F.build_data(F.CONFIRMED_UP, DEVADDR, i, 1, READING, nwk_key=NWK, app_key=APP) for i in range(n)
    ]
    v1_frames = [radio.build_uplink(KEY, DEV, i, 1, READING) for i in range(n)]

    def lorawan_pass() -> None:
        last = -1
        for f in lw_frames:
            d = F.parse_data(f)
            full = F.full_fcnt(last, d.fcnt16)
            assert d.mic_ok(NWK, full)
            d.decrypt(NWK, APP, full)
            last = full

    def v1_pass() -> None:
        for f in v1_frames:
            assert radio.parse_frame(f).mic_ok(KEY)

    out: dict = {}
    for name, one_pass in (("lorawan", lorawan_pass), ("baseline_v1_hmac", v1_pass)):
        frames, t0 = 0, time.process_time()
        while time.process_time() - t0 < MIN_SECONDS:
            one_pass()
            frames += n
        out[name] = round((time.process_time() - t0) / frames * 1e6, 1)
        out[f"{name}_frames"] = frames
    return out


def _ingest_us(root: Path) -> dict:
    """The ingest writer's cost per uplink, batches of 256 committed with synchronous=FULL, each side
    until its batches took >= MIN_SECONDS (frames are built outside the timed part)."""
    out = {}
    for kind in ("lorawan", "baseline_v1"):
        conn = connect(root / f"{kind}.db")
        migrate(conn)
        registry.add_device(conn, DEV, key=KEY, actor="bench", now=1.0)
        if kind == "lorawan":
            conn.execute(
                "INSERT INTO lorawan_sessions (device_id, devaddr, nwk_skey, app_skey, base, joined_at)"
                " VALUES (?, ?, ?, ?, 0, 1.0)",
                (DEV, DEVADDR, NWK, APP),
            )
            conn.commit()
        # v1 frames are taken from a node that never joined only with accept_v1 (off by default)
        numbers, network = Numbers(), Network(LoRaWANSettings(accept_v1=kind != "lorawan"))
        wall = cpu = 0.0
        n = 0
        while wall < MIN_SECONDS:
            if kind == "lorawan":
                frames = [
                    F.build_data(F.CONFIRMED_UP, DEVADDR, i, 1, READING, nwk_key=NWK, app_key=APP)
                    for i in range(n, n + 256)
                ]
            else:
                frames = [radio.build_uplink(KEY, DEV, i, 1, READING) for i in range(n, n + 256)]
            payloads = [(radio.build_serial_uplink(f, rssi=-90, snr=7.0), "bridge0000000001") for f in frames]
            t0, c0 = time.perf_counter(), time.process_time()
            with transaction(conn):
                outs = handle_batch(conn, payloads, numbers=numbers, now=2.0, network=network)
            wall, cpu = wall + time.perf_counter() - t0, cpu + time.process_time() - c0
            assert all(o.result == radio.AckResult.STORED for o in outs)
            n += 256
        conn.close()
        out[kind] = {
            "uplinks": n,
            "wall_us_per_uplink": round(wall / n * 1e6, 1),
            "cpu_us_per_uplink": round(cpu / n * 1e6, 1),
        }
    return out


def _join_on_air(root: Path, joins: int) -> dict:
    from edge.sim import VirtualModule
    from tests.firmware.edgepeer import EdgePeer
    from tests.firmware.modules import (
        BRIDGE_ID,
        BRIDGE_KEY,
        NODE_ID,
        NODE_KEY,
        bridge_config,
        free_udp_ports,
        module_dir,
        node_config,
    )
    from tests.firmware.realedge import RealEdge

    join_ms, ack_ms = [], []
    for i in range(joins):
        edge = RealEdge(root / f"join{i}.db")
        edge.register(NODE_ID, NODE_KEY)
        edge.register(BRIDGE_ID, BRIDGE_KEY, role="bridge")
        node_port, bridge_port = free_udp_ports(2)
        bdir = module_dir(root / f"j{i}", "bridge", **bridge_config(bridge_port, node_port, time_scale=1))
        ndir = module_dir(
            root / f"j{i}", "node", **node_config(node_port, bridge_port, time_scale=1, interval=600)
        )
        bridge = VirtualModule("main.py", ["config.json"], cwd=bdir, name="bridge").start()
        peer = EdgePeer(bridge.port, {}, ingest=edge)
        node = VirtualModule("main.py", ["config.json"], cwd=ndir, name="node")
        try:
            time.sleep(1.0)  # the bridge's HELLO
            node.start()
            seen: dict[str, float] = {}
            end = time.monotonic() + 30
            while time.monotonic() < end and "acked" not in seen:
                for line in list(node.output):
                    for ev in ("T join ", "T joined ", "T announced ", "T tx ", "T acked "):
                        if line.startswith(ev):
                            seen.setdefault(ev.split()[1], time.monotonic())
                time.sleep(0.002)
            if "joined" in seen and "join" in seen:
                join_ms.append((seen["joined"] - seen["join"]) * 1000)
            if "acked" in seen and "tx" in seen:
                ack_ms.append((seen["acked"] - seen["tx"]) * 1000)
        finally:
            node.close()
            peer.close()
            bridge.close()
            edge.close()
    return {
        "join_request_to_accept_ms": round(statistics.median(join_ms), 1) if join_ms else None,
        "baseline_uplink_to_ack_ms": round(statistics.median(ack_ms), 1) if ack_ms else None,
        "joins": len(join_ms),
        "note": "wall time with a 2 ms polling of the node's trace; SF7, time scale 1",
    }


def run(out_dir: Path, quick: bool) -> dict:
    n = 2_000 if quick else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures = {
            **_sizes(),
            "edge_verify_decrypt_us": _crypto_us(n),
            "edge_ingest": _ingest_us(root),
        }
        try:
            figures["join_on_virtual_air"] = _join_on_air(root, 1 if quick else 5)
        except Exception as exc:  # noqa: BLE001 - a figure we could not take is reported, not hidden
            figures["join_on_virtual_air"] = {"error": repr(exc)}
    return figures
