"""The firmware's LoRaWAN crypto and frames (firmware/fp/lorawan) against tests/vectors/lorawan.json."""

from __future__ import annotations

import json

import pytest

from tests.firmware import lorawan_vectors
from tests.firmware.conftest import VECTORS, run_mp

pytestmark = pytest.mark.firmware


def test_vectors_file_matches_generator():
    # The generator refuses to write a published vector the edge code does not reproduce.
    assert (VECTORS / "lorawan.json").read_text() == lorawan_vectors.render()


def test_every_vector_names_its_source():
    vec = json.loads((VECTORS / "lorawan.json").read_text())
    for group in ("cmac", "data_frames", "join_requests", "join_accepts", "session_keys", "fcnt"):
        assert vec[group], group
        assert all(v["source"] for v in vec[group]), group
    published = [v for g in ("data_frames", "join_requests", "join_accepts") for v in vec[g]]
    assert sum(not v["source"].startswith("fieldpost") for v in published) >= 6


def test_firmware_passes_lorawan_vectors(micropython):
    vec = json.loads((VECTORS / "lorawan.json").read_text())
    total = sum(len(vec[g]) for g in vec if isinstance(vec[g], list))
    out = run_mp("check_lorawan_vectors.py", str(VECTORS / "lorawan.json"), heapsize="64K")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line for line in lines if line.startswith("FAIL")] == []
    assert lines[-1] == f"OK {total}"
