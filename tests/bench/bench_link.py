"""Serial link benchmark (issue 2): frames/s through encode+decode, and through a real pty.

- codec: the edge codec (C `cobs` + zlib) against the firmware's pure-Python codec run on
  CPython (the baseline), and that firmware codec under the real `micropython`;
- pty: frames through a pty with pyserial reading, and the full link (linktest firmware
  under micropython -> LinkPort with ACKs), as a fraction of a 921,600 baud line
  (8N1: 92,160 bytes/s). A pty has no baud rate: a fraction above 1 is headroom.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import serial

from edge.link import frame as edge_frame
from edge.link.frame import FrameType
from edge.link.port import LinkPort
from edge.link.session import Received
from edge.sim import FIRMWARE_DIR, VirtualModule, find_micropython, open_raw_pty

BAUD = 921_600
LINE_BYTES_PER_S = BAUD / 10  # 8 data bits + start + stop


def firmware_codec():
    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))
    from fp import frame

    return frame


def sample_frames(n: int, size: int, seed: int = 1) -> list[tuple[int, int, bytes]]:
    rng = random.Random(seed)
    return [(FrameType.UPLINK, i & 0xFFFF, rng.randbytes(size)) for i in range(n)]


def time_codec(encode, make_deframer, frames) -> float:
    """Seconds to encode every frame and decode the stream again, in 4 KB reads."""
    t0 = time.perf_counter()
    wire = b"".join(encode(t, s, p) for t, s, p in frames)
    deframer = make_deframer()
    got = 0
    for i in range(0, len(wire), 4096):
        got += len(deframer.feed(wire[i : i + 4096]))
    elapsed = time.perf_counter() - t0
    assert got == len(frames), (got, len(frames))
    return elapsed


MP_SCRIPT = """
import sys, time, json
from fp import frame as F
n = int(sys.argv[1]); out = {}
for size in [int(s) for s in sys.argv[2].split(",")]:
    p = bytes((i * 7 + 1) & 0xFF for i in range(size))
    d = F.Deframer(); got = 0
    t0 = time.ticks_us()
    for start in range(0, n, 32):  # encode a batch, decode it: a board never holds the stream
        wire = bytearray()
        for i in range(start, min(n, start + 32)):
            wire.extend(F.encode(0x10, i & 0xFFFF, p))
        got += len(d.feed(wire))
    dt = time.ticks_diff(time.ticks_us(), t0) / 1e6
    out[str(size)] = {"frames": got, "seconds": dt}
print(json.dumps(out))
"""


def micropython_codec(n: int, sizes: list[int]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "codec_bench.py"
        script.write_text(MP_SCRIPT)
        proc = subprocess.run(
            [find_micropython(), str(script), str(n), ",".join(map(str, sizes))],
            env={"MICROPYPATH": f"{FIRMWARE_DIR}:.frozen"},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"micropython codec benchmark failed: {proc.stdout} {proc.stderr}")
    raw = json.loads(proc.stdout)
    return {size: {"frames_per_s": v["frames"] / v["seconds"]} for size, v in raw.items()}


def codec_figures(n: int, sizes: list[int]) -> dict:
    fw = firmware_codec()
    out = {}
    for size in sizes:
        frames = sample_frames(n, size)
        edge_s = min(time_codec(edge_frame.encode, edge_frame.Deframer, frames) for _ in range(3))
        fw_s = min(time_codec(fw.encode, fw.Deframer, frames) for _ in range(2))
        out[str(size)] = {
            "edge_frames_per_s": n / edge_s,
            "firmware_on_cpython_frames_per_s": n / fw_s,
            "edge_vs_firmware_ratio": fw_s / edge_s,
        }
    mp = micropython_codec(max(200, n // 10), sizes)
    for size, figures in mp.items():
        out[size]["firmware_on_micropython_frames_per_s"] = figures["frames_per_s"]
    return out


def pty_raw_figures(n: int, size: int) -> dict:
    """pyserial reading frames that a writer thread pushes into the pty as fast as it can."""
    master, slave, path = open_raw_pty()
    os.close(slave)
    ser = serial.Serial(path, BAUD, timeout=0.5)
    frames = sample_frames(n, size)
    wire = b"".join(edge_frame.encode(t, s, p) for t, s, p in frames)

    def writer():
        view = memoryview(wire)
        while view:
            written = os.write(master, view[:4096])
            view = view[written:]

    try:
        deframer = edge_frame.Deframer()
        got = 0
        t0 = time.perf_counter()
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        while got < n:
            data = ser.read(max(1, min(ser.in_waiting, 65536)))
            if not data:
                break
            got += len(deframer.feed(data))
        elapsed = time.perf_counter() - t0
        thread.join(5)
    finally:
        ser.close()
        os.close(master)
    return {
        "frames": got,
        "payload_bytes": size,
        "frames_per_s": got / elapsed,
        "wire_bytes_per_s": len(wire) / elapsed,
        "fraction_of_line_rate": len(wire) / elapsed / LINE_BYTES_PER_S,
    }


def linktest_figures(n: int, size: int) -> dict:
    """The whole link: linktest firmware under micropython sends n frames, the edge ACKs each."""
    done = threading.Event()
    received = []
    ref: list[LinkPort] = []

    def on_event(event):
        if isinstance(event, Received):
            ref[0].ack(event.frame.seq)
            if event.frame.type == FrameType.STATUS:
                done.set()
            else:
                received.append(event.frame.seq)

    with VirtualModule("linktest.py", ["--send", str(n), "--size", str(size)]) as vm:
        port = LinkPort(vm.port, hello={"edge": "bench"}, on_event=on_event)
        ref.append(port)
        t0 = time.perf_counter()
        port.open()
        try:
            if not port.wait_up(10):
                raise RuntimeError("no session with the linktest firmware")
            t_up = time.perf_counter()
            if not done.wait(300):
                raise RuntimeError(f"only {len(received)} of {n} frames arrived")
            elapsed = time.perf_counter() - t_up
            bytes_rx, bytes_tx = port.bytes_rx, port.bytes_tx
        finally:
            port.close()
    wire_per_frame = len(edge_frame.encode(FrameType.UPLINK, 0, bytes(size)))
    return {
        "frames": len(received),
        "payload_bytes": size,
        "handshake_s": t_up - t0,
        "frames_per_s": len(received) / elapsed,
        "payload_bytes_per_s": len(received) * size / elapsed,
        "wire_bytes_per_s_module_to_edge": bytes_rx / elapsed,
        "wire_bytes_per_s_edge_to_module": bytes_tx / elapsed,
        "fraction_of_line_rate": len(received) * wire_per_frame / elapsed / LINE_BYTES_PER_S,
    }


def run(out_dir: Path, quick: bool) -> dict:
    sizes = [16, 64, 512]
    figures = {
        "line": {"baud": BAUD, "bytes_per_s": LINE_BYTES_PER_S},
        "codec": codec_figures(2_000 if quick else 20_000, sizes),
        "pty_pyserial": {str(size): pty_raw_figures(5_000 if quick else 50_000, size) for size in (16, 512)},
        "pty_linktest": {str(size): linktest_figures(300 if quick else 3_000, size) for size in (16, 200)},
        "quick": quick,
    }
    (out_dir / "link.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures
