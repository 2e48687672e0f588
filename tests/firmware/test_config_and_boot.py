"""config.json defaults and errors, safe mode after repeated boot crashes, and every
firmware file compiling with mpy-cross for the boards' architectures."""

from __future__ import annotations

import json
import subprocess

import pytest

from edge.tools.build_firmware import build, find_mpy_cross, firmware_files
from tests.conftest import wait_until
from tests.firmware.conftest import FIRMWARE, MICROPYTHON, run_mp
from tests.firmware.modules import NODE_ID, NODE_KEY, bridge_config, free_udp_ports

pytestmark = pytest.mark.firmware

IDENTITY = {"id": NODE_ID, "key": NODE_KEY.hex()}


def check(doc: dict) -> str:
    out = run_mp("check_config.py", json.dumps(doc))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_defaults_fill_everything_but_the_identity():
    assert check(IDENTITY) == "OK node 300 EU868"


@pytest.mark.parametrize(
    "doc, key, words",
    [
        ({}, "id", "missing"),
        ({"id": NODE_ID}, "key", "missing"),
        ({**IDENTITY, "id": "XYZ"}, "id", "16 hex digits"),
        ({**IDENTITY, "role": "gateway"}, "role", "one of node, bridge"),
        ({**IDENTITY, "interval": 5}, "interval", "out of range"),
        ({**IDENTITY, "interval": "60"}, "interval", "must be a number"),
        ({**IDENTITY, "region": "MARS"}, "region", "unknown region"),
        ({**IDENTITY, "region": "US915", "dr": 5}, "dr", "out of range 0..3"),
        ({**IDENTITY, "region": "US915", "dr": 0}, "dr", "carries 11 bytes"),
        ({**IDENTITY, "colour": "red"}, "colour", "unknown key"),
        ({**IDENTITY, "air": {"loss": 2}}, "air.loss", "out of range"),
        ({**IDENTITY, "own_readings": 1}, "own_readings", "true or false"),
    ],
)
def test_bad_config_names_the_key(doc, key, words):
    result = check(doc)
    assert result.startswith(f"ERR {key} |"), result
    assert words in result


def test_unparsable_config_boots_safe_mode_and_says_why(tmp_path, virtual_module):
    (tmp_path / "config.json").write_text("{not json")
    vm = virtual_module("main.py", ["config.json"], cwd=tmp_path, name="badcfg")
    wait_until(lambda: "SAFE MODE" in vm.output_text(), timeout=10, what="safe mode")
    assert "config.json is not valid JSON" in vm.output_text()
    assert vm.running  # reachable for a fix, not dead


def test_repeated_boot_crashes_end_in_safe_mode(tmp_path, virtual_module):
    # The journal directory cannot be created (a file is in the way): every boot dies
    # before the role runs. After safe_boots crashes the firmware stops trying.
    node_port, bridge_port = free_udp_ports(2)
    cfg = bridge_config(bridge_port, node_port, safe_boots=2)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "journal").write_text("in the way")
    vm = virtual_module("main.py", ["config.json"], cwd=tmp_path, name="crashy")
    wait_until(lambda: "SAFE MODE" in vm.output_text(), timeout=15, what="safe mode")
    text = vm.output_text()
    assert text.count("crash at boot") == 2
    assert "SAFE MODE: 2 crashed boots" in text
    assert vm.running


@pytest.mark.parametrize("arch", ["xtensawin", "armv6m"])
def test_every_firmware_file_compiles(arch, tmp_path):
    mpy_cross = find_mpy_cross()
    files = firmware_files()
    assert len(files) >= 20
    for rel in files:
        out = subprocess.run(
            [mpy_cross, f"-march={arch}", "-o", str(tmp_path / "x.mpy"), str(FIRMWARE / rel)],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, f"{rel}: {out.stderr}"


def test_board_bundles(tmp_path):
    built = build(tmp_path, ["heltec_v2", "heltec_v3", "pico_rfm95w", "unix"])
    assert built["heltec_v2"]["arch"] == "xtensawin"
    assert built["pico_rfm95w"]["arch"] == "armv6m"
    for board in built:
        files = built[board]["files"]
        assert "main.py" in files and "boot.py" in files and "board.json" in files
        assert "fp/journal.mpy" in files and "fp/roles/node.mpy" in files
        assert json.loads((tmp_path / board / "board.json").read_text())["name"] == board
    # compiled MicroPython bytecode (.mpy version 6), as the boards load it
    header = (tmp_path / "heltec_v2" / "fp" / "journal.mpy").read_bytes()[:2]
    assert header == b"M\x06"
    manifest = json.loads((tmp_path / "unix" / "manifest.json").read_text())
    assert manifest["files"] == built["unix"]["files"]
    assert manifest["arch"] is None and built["heltec_v2"]["board"] == "heltec_v2"


def test_a_compiled_module_names_itself_once(tmp_path):
    """A traceback from a board's bundle names the file the board has (fp/x.mpy), the same string
    its import gives __file__: one identifier in the heap per module, not two."""
    build(tmp_path, ["unix"])
    code = (
        "import sys\n"
        "from fp import config\n"
        "try:\n"
        "    config.validate({})\n"
        "except Exception as e:\n"
        "    sys.print_exception(e)\n"
        "print('file', config.__file__)\n"
    )
    out = subprocess.run(
        [str(MICROPYTHON), "-c", code],
        cwd=tmp_path / "unix",
        env={"MICROPYPATH": ":.frozen"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "file fp/config.mpy" in out.stdout
    assert 'File "fp/config.mpy"' in out.stdout, out.stdout
    assert ".py" not in out.stdout.replace("main.py", ""), out.stdout
