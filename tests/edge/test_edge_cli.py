import csv
import io
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from edge_helpers import STANDARD
from lorawan_node import EndDevice

from edge import cli
from edge.codecs import lpp
from edge.ingest import handle_uplink
from edge.radio import AckResult
from edge.store import connect, transaction
from edge.store.numbers import Numbers

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
EDGE_GROUPS = ("run", "status", "devices", "db", "config")
DEV = "00000000000000c1"


def edge_commands():
    return [(path, cmd) for path, cmd in cli.command_paths() if path.split()[1] in EDGE_GROUPS]


def test_every_command_has_help():
    for path, cmd in cli.command_paths():
        assert cmd.help and cmd.help.strip(), f"{path} has no help text"
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, f"{path} {param.opts[0]} has no help text"


def test_every_edge_command_is_documented():
    text = DOCS.read_text()
    for path, _ in edge_commands():
        assert f"`{path}" in text, f"{path} is not in docs/cli.md"
    assert "fieldpost devices adopt" in text and "fieldpost db export" in text


@pytest.fixture
def run(tmp_path):
    config = tmp_path / "fieldpost.toml"
    config.write_text(f'[edge]\ndb = "{tmp_path / "fp.db"}"\n[http]\nport = 0\n')
    runner = CliRunner()

    def invoke(*args, input=None, ok=True):
        result = runner.invoke(
            cli.main, ["--config", str(config), *args], input=input, catch_exceptions=False
        )
        if ok:
            assert result.exit_code == 0, result.output
        return result

    invoke("db", "migrate")
    return invoke


def test_devices_lifecycle(run, tmp_path):
    out = run("devices", "add", DEV, "--name", "pump house").output
    key = out.split("key")[1].strip()
    assert len(key) == 32
    assert run("devices", "show-key", DEV).output.strip() == key
    listed = json.loads(run("devices", "list", "--json").output)
    assert [(d["id"], d["name"], d["last_fcnt"]) for d in listed] == [(DEV, "pump house", -1)]
    assert "key" not in listed[0]
    assert DEV in run("devices", "list").output
    new_key = run("devices", "rotate-key", DEV).output.strip()
    assert new_key != key and run("devices", "show-key", DEV).output.strip() == new_key
    bad = run("devices", "add", "nothex", ok=False)
    assert bad.exit_code != 0 and "device_id" in bad.output
    bad = run("devices", "add", DEV, "--key", "abcd", ok=False)
    assert "key: is 2 bytes" in bad.output
    run("devices", "remove", DEV, "--yes")
    assert json.loads(run("devices", "list", "--json").output) == []
    conn = connect(tmp_path / "fp.db")
    actions = [r[0] for r in conn.execute("SELECT action FROM audit_log WHERE actor = 'cli' ORDER BY id")]
    assert actions == [
        "device.add",
        "device.show_key",
        "device.rotate_key",
        "device.show_key",
        "device.remove",
    ]
    conn.close()


def ingest(db_path, payload, now=1_700_000_000.0):
    conn = connect(db_path)
    try:
        with transaction(conn):
            return handle_uplink(conn, payload, bridge_id="b", numbers=Numbers(), now=now)
    finally:
        conn.close()


def join(db_path, key: bytes) -> EndDevice:
    """DEV, a LoRaWAN node with AppKey ``key``, joined through the edge's ingest (OTAA)."""
    node = EndDevice(DEV, key)
    out = ingest(db_path, node.join_request())
    assert out.result == AckResult.JOINED, out.detail
    node.accept(out.ack[1:])
    return node


def test_quarantine_and_adopt(run, tmp_path):
    key = bytes(range(16))
    node = EndDevice(DEV, key)
    assert ingest(tmp_path / "fp.db", node.join_request()).result == AckResult.UNKNOWN_DEVICE
    q = json.loads(run("devices", "quarantine", "--json").output)
    assert [(r["device_id"], r["count"]) for r in q] == [(DEV, 1)]
    assert DEV in run("devices", "quarantine").output
    assert (
        "not in quarantine"
        in run("devices", "adopt", "00000000000000ff", "--key", key.hex(), ok=False).output
    )
    run("devices", "adopt", DEV, "--key", key.hex(), "--name", "found")
    assert json.loads(run("devices", "quarantine", "--json").output) == []
    node = join(tmp_path / "fp.db", key)
    assert ingest(tmp_path / "fp.db", node.uplink(lpp.encode(STANDARD))).result == AckResult.STORED


def test_db_commands_and_export(run, tmp_path):
    out = run("devices", "add", DEV).output
    key = bytes.fromhex(out.split("key")[1].strip())
    node = join(tmp_path / "fp.db", key)
    for fcnt in (1, 2):
        uplink = node.uplink(lpp.encode(STANDARD), fcnt=fcnt, rssi=-80, snr=7.25)
        ingest(tmp_path / "fp.db", uplink, now=1_700_000_000.0 + fcnt)
    assert run("db", "check").output.strip() == "ok"
    assert run("db", "migrate").output.strip() == "up to date"
    rows = list(csv.reader(io.StringIO(run("db", "export").output)))
    assert rows[0][:8] == ["device", "fcnt", "measured_at", "port", "channel", "name", "value", "unit"]
    assert rows[1][:8] == [DEV, "1", "1700000001.0", "1", "1", "temperature", "21.5", "°C"]
    assert len(rows) == 1 + 2 * 3
    lines = run(
        "db", "export", "--format", "json", "--device", DEV, "--since", "1700000002"
    ).output.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [f"{DEV}:2"]
    # docs/cli.md: the JSON export is the document the cloud receives, plus the decode error
    exported = json.loads(lines[0])
    assert exported.pop("decode_error") is None
    assert exported == {
        "id": f"{DEV}:2",
        "device": DEV,
        "fcnt": 2,
        "ts": 1700000002.0,
        "port": 1,
        "values": [
            {"channel": 1, "name": "temperature", "value": 21.5, "unit": "°C"},
            {"channel": 2, "name": "humidity", "value": 55.0, "unit": "%"},
            {"channel": 3, "name": "voltage", "value": 3.7, "unit": "V"},
        ],
        "raw": "016700d702686e03740172",
        "rssi": -80,
        "snr": 7.25,
        "bridge": "b",
    }
    backup = tmp_path / "backup.db"
    run("db", "backup", str(backup))
    assert "exists" in run("db", "backup", str(backup), ok=False).output
    run("devices", "remove", DEV, "--purge", "--yes")
    status = json.loads(run("status", "--json").output)
    # nothing reached a cloud yet: purging keeps the unsynced readings until they do
    assert (status["devices"], status["readings"], status["backlog"]) == (0, 2, 2)
    run("db", "restore", str(backup), "--yes")
    assert len(json.loads(run("devices", "list", "--json").output)) == 1
    assert "->" in run("db", "vacuum").output
    status = json.loads(run("status", "--json").output)
    assert (status["devices"], status["readings"], status["backlog"]) == (1, 2, 2)
    assert status["daemon"]["reachable"] is False
    assert "readings     2 stored" in run("status").output


def test_restore_refuses_a_damaged_file(run, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    result = run("db", "restore", str(bad), "--yes", ok=False)
    assert (
        result.exit_code != 0
        and f"{bad}: not a usable SQLite database: file is not a database" in result.output
    )


def test_config_errors_name_the_key(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[ingest]\nhigh_water = -1\n")
    result = CliRunner().invoke(cli.main, ["--config", str(config), "status"])
    assert (
        result.exit_code != 0
        and "ingest.high_water: -1 is outside 1 .. " in result.output
        and "fix:" in result.output
    )
    result = CliRunner().invoke(cli.main, ["--config", str(tmp_path / "none.toml"), "config"])
    assert "no such configuration file" in result.output


def test_config_command_shows_values_and_example(run):
    assert "high_water = 500000" in run("config").output
    assert "[ingest]" in run("config", "--example").output


def test_csv_export_defuses_spreadsheet_formulas_in_decoded_text(run, tmp_path, plugin_path):
    # A custom codec's names and units are not trusted: "=..." must not become a formula.
    out = run("devices", "add", DEV, "--codec", "tank_formula").output
    key = bytes.fromhex(out.split("key")[1].strip())
    ingest(tmp_path / "fp.db", join(tmp_path / "fp.db", key).uplink(b"\x01", fcnt=7))
    rows = list(csv.reader(io.StringIO(run("db", "export").output)))
    assert rows[1][4:8] == ["1", "'=HYPERLINK(1)", "2", "'@x"]


def test_export_gives_the_measurement_time_and_selects_by_it(run, tmp_path):
    # Issue 13 item 9: a reading received at T that waited 100 s on its module (port 8 on the air,
    # docs/radio.md 0.9) is exported at T - 100, found by --since/--until around T - 100, and keeps
    # its receive time in the last column.
    from edge import radio
    from edge.codecs import lpp

    out = run("devices", "add", DEV).output
    key = bytes.fromhex(out.split("key")[1].strip())
    readings = lpp.encode([(1, "temperature", 21.5)])
    aged = bytes([100]) + readings  # LEB128 of 100: one byte
    node = join(tmp_path / "fp.db", key)
    ingest(tmp_path / "fp.db", node.uplink(aged, port=radio.PORT_AGED, fcnt=1), now=1_700_000_200.0)
    ingest(tmp_path / "fp.db", node.uplink(readings, fcnt=2), now=1_700_000_300.0)
    rows = list(csv.reader(io.StringIO(run("db", "export").output)))
    assert rows[0][2] == "measured_at" and rows[0][-1] == "received_at"
    assert [(r[1], r[2], r[-1]) for r in rows[1:]] == [
        ("1", "1700000100.0", "1700000200.0"),
        ("2", "1700000300.0", "1700000300.0"),
    ]
    lines = run("db", "export", "--format", "json", "--since", "1700000050", "--until", "1700000150").output
    (doc,) = [json.loads(line) for line in lines.splitlines()]
    assert (doc["id"], doc["ts"], doc["received"]) == (f"{DEV}:1", 1700000100.0, 1700000200.0)
