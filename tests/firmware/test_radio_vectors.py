"""The firmware's radio frames, HMAC and Cayenne LPP against tests/vectors/radio.json."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.firmware import radio_vectors
from tests.firmware.conftest import VECTORS, run_mp

pytestmark = pytest.mark.firmware


def test_vectors_file_matches_generator():
    # radio.json is generated from CPython's hmac; a hand edit would show up here.
    assert (VECTORS / "radio.json").read_text() == radio_vectors.render()


def test_firmware_passes_radio_vectors(micropython):
    out = run_mp("check_radio_vectors.py", str(VECTORS / "radio.json"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line for line in lines if line.startswith("FAIL")] == []
    assert lines[-1] == "OK 54"


def test_hmac_matches_cpython_on_random_inputs(micropython, tmp_path):
    import random

    rng = random.Random(1234)
    cases = []
    for n in (0, 1, 16, 63, 64, 65, 100, 200):
        key = bytes(rng.randrange(256) for _ in range(n))
        msg = bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
        cases.append([key.hex(), msg.hex(), hmac.new(key, msg, hashlib.sha256).hexdigest()])
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(cases))
    out = run_mp("check_hmac.py", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["OK", str(len(cases))]


def test_standard_reading_fits_sigfox_budget(micropython):
    out = run_mp("check_lpp_sizes.py")
    assert out.returncode == 0, out.stderr
    sizes = [int(x) for x in out.stdout.split()]
    assert len(sizes) == 4
    # extremes of every field; the standard reading must never exceed 12 bytes
    assert max(sizes) <= 12
    assert sizes[0] == 11
