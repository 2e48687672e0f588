"""provisioning.journal reads what the real firmware journal (firmware/fp/journal.py, format 2) wrote:
the frames it counts as pending are exactly the ones the firmware replays as pending."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

from provisioning.journal import JOURNAL_DIR, T_FORMAT, T_FRAME, T_REFUSED, is_segment, pending_fcnts

REPO = Path(__file__).resolve().parents[2]
MICROPYTHON = REPO / ".venv" / "bin" / "micropython"

# Under micropython, in the module directory: frames 0..9 into a 6-frame journal (0..3 dropped as it
# fills), 5 acknowledged, 6 given up after refusals; then the firmware's own replay of what is left.
WRITE_AND_REPLAY = """
import json, struct
from fp.journal import Journal
def frame(fcnt):
    return bytes([0x40]) + bytes(8) + struct.pack(">I", fcnt) + bytes([1]) + b"\\x01\\x67\\x00\\xd7"
j = Journal("journal", capacity=6, seg_bytes=256)
for f in range(10):
    j.append(frame(f))
j.done(5)
j.done(6, True)
j.close()
print(json.dumps(sorted(Journal("journal", capacity=6, seg_bytes=256).pending())))
"""


def run_firmware(cwd: Path, code: str) -> list[int]:
    env = dict(os.environ, MICROPYPATH=f"{REPO / 'firmware'}:.frozen")
    out = subprocess.run(
        [str(MICROPYTHON), "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def segments(module: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (module / JOURNAL_DIR).iterdir() if is_segment(p.name)}


def record(rtype: int, body: bytes) -> bytes:
    head = bytes((rtype, len(body)))
    return bytes((0xA5,)) + head + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(head)))


def record_types(data: dict[str, bytes]) -> list[int]:
    types = []
    for blob in data.values():
        off = 0
        while off + 3 <= len(blob):
            types.append(blob[off + 1])
            off += 3 + blob[off + 2] + 4
    return types


def test_pending_matches_the_firmware_replay_with_a_given_up_frame(tmp_path):
    firmware_pending = run_firmware(tmp_path, WRITE_AND_REPLAY)
    assert firmware_pending == [4, 7, 8, 9]
    written = segments(tmp_path)
    assert T_REFUSED in record_types(written) and T_FORMAT in record_types(written)
    # fcnt 6 has a REFUSED record, not a DONE one: it must not count as waiting to be sent
    assert pending_fcnts(written) == set(firmware_pending)


def test_a_segment_of_another_format_is_not_counted(tmp_path):
    # a newer firmware's segment (FORMAT 3): the firmware leaves it on flash and does not send from it
    (tmp_path / JOURNAL_DIR).mkdir()
    alien = record(T_FORMAT, b"\x03") + record(T_FRAME, b"\x40" + bytes(8) + struct.pack(">I", 50) + b"\x01")
    (tmp_path / JOURNAL_DIR / "s00000000.j").write_bytes(alien)
    firmware_pending = run_firmware(tmp_path, WRITE_AND_REPLAY)
    assert 50 not in firmware_pending
    assert (tmp_path / JOURNAL_DIR / "s00000000.j").read_bytes() == alien  # untouched
    assert pending_fcnts(segments(tmp_path)) == set(firmware_pending)


def test_format_1_frames_and_a_torn_tail(tmp_path):
    # firmware 0.1.0 journals: no FORMAT record, signed frames; a torn last record is not read
    signed = b"\x40" + bytes(8) + struct.pack(">I", 3) + b"\x01" + b"\x00" * 4 + b"MIC!"
    seg = record(T_FRAME, signed) + record(T_FRAME, signed[:9] + struct.pack(">I", 4) + signed[13:])
    assert pending_fcnts({"s00000001.j": seg + record(T_FRAME, signed)[:-2], "notes.txt": b""}) == {3, 4}
