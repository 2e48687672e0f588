"""`fieldpost devices add --activation abp`: the device and its ABP session in one step, through the
real CLI against a real SQLite file, then a data frame built with those keys taken by ingest."""

import json

import pytest
from click.testing import CliRunner
from edge_helpers import stored
from lorawan_node import EndDevice, lpp_reading

from edge import cli
from edge.ingest import handle_uplink
from edge.lorawan.network import Network
from edge.lorawan.settings import parse as parse_lorawan
from edge.radio import AckResult
from edge.store import connect, transaction
from edge.store.numbers import Numbers

DEV = "00000000000000c1"
OTHER = "00000000000000c2"
NET_ID = 0x13  # NwkID 0x13: DevAddrs 26000000 .. 27ffffff
DEVADDR = "260b0001"
NWK = bytes(range(16)).hex()
APP = bytes(range(16, 32)).hex()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "fp.db"


@pytest.fixture
def run(tmp_path, db_path):
    config = tmp_path / "fieldpost.toml"
    config.write_text(f'[edge]\ndb = "{db_path}"\n[http]\nport = 0\n[lorawan]\nnet_id = {NET_ID}\n')
    runner = CliRunner()

    def invoke(*args, ok=True):
        result = runner.invoke(cli.main, ["--config", str(config), *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        else:
            assert result.exit_code != 0, result.output
        return result

    invoke("db", "migrate")
    return invoke


def add_abp(run, dev=DEV, devaddr=DEVADDR, nwk=NWK, app=APP, ok=True, extra=()):
    args = ["devices", "add", dev, "--activation", "abp"]
    for opt, value in (("--devaddr", devaddr), ("--nwk-skey", nwk), ("--app-skey", app)):
        if value is not None:
            args += [opt, value]
    return run(*args, *extra, ok=ok)


def sessions(db_path):
    conn = connect(db_path)
    try:
        return [
            (r[0], r[1], bytes(r[2]).hex(), bytes(r[3]).hex(), r[4])
            for r in conn.execute(
                "SELECT device_id, devaddr, nwk_skey, app_skey, dev_nonce FROM lorawan_sessions ORDER BY device_id"
            )
        ]
    finally:
        conn.close()


def audit_rows(db_path):
    conn = connect(db_path)
    try:
        return [tuple(r) for r in conn.execute("SELECT action, target, detail FROM audit_log ORDER BY id")]
    finally:
        conn.close()


def test_abp_device_gets_its_session_and_the_audit_holds_no_key(run, db_path):
    out = add_abp(run, extra=("--name", "weir")).output
    assert f"device {DEV}" in out and "devaddr 260b0001" in out
    assert NWK not in out and APP not in out  # the operator typed them; they are not echoed
    assert sessions(db_path) == [(DEV, 0x260B0001, NWK, APP, None)]  # dev_nonce NULL: ABP
    listed = json.loads(run("devices", "list", "--json").output)
    assert [(d["id"], d["name"]) for d in listed] == [(DEV, "weir")]
    (action, target, detail), *_ = [r for r in audit_rows(db_path) if r[0].startswith("device.")]
    assert (action, target) == ("device.add", DEV)
    assert json.loads(detail) == {
        "name": "weir",
        "codec": "lpp",
        "board": "",
        "role": "node",
        "activation": "abp",
        "devaddr": DEVADDR,
    }
    everything = json.dumps(audit_rows(db_path)).lower()
    assert NWK not in everything and APP not in everything


def test_an_abp_uplink_built_with_those_keys_is_stored(run, db_path):
    add_abp(run)
    node = EndDevice(DEV, b"\0" * 16)  # ABP: no join, so the AppKey plays no part
    node.devaddr, node.nwk, node.app = int(DEVADDR, 16), bytes.fromhex(NWK), bytes.fromhex(APP)
    net = Network(parse_lorawan({"net_id": NET_ID}))
    conn = connect(db_path)
    try:
        for i in range(2):
            with transaction(conn):
                out = handle_uplink(
                    conn,
                    node.uplink(lpp_reading(20 + i)),
                    bridge_id="bridge0000000001",
                    numbers=Numbers(),
                    now=1_700_000_100.0 + i,
                    network=net,
                )
            assert out.result == AckResult.STORED, out.detail
            ack, _, _ = node.downlink(out.ack[1:])
            assert ack
        readings = stored(conn, DEV)
        assert [r.msg_id for r in readings] == [f"{DEV}:0", f"{DEV}:1"]
        assert readings[1].raw == lpp_reading(21)
    finally:
        conn.close()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("devaddr", "260b01", "--devaddr: is 3 bytes, expected 4 (8 hex digits)"),
        ("devaddr", "zz0b0001", "--devaddr: is not hex"),
        ("nwk", NWK[:-2], "--nwk-skey: is 15 bytes, expected 16 (32 hex digits)"),
        ("app", APP + "00", "--app-skey: is 17 bytes, expected 16 (32 hex digits)"),
        ("app", "g" * 32, "--app-skey: is not hex"),
        ("devaddr", "00000001", "--devaddr: 00000001 has NwkID 0x00, but [lorawan] net_id 0x000013"),
    ],
)
def test_bad_abp_values_are_refused_naming_the_option(run, db_path, field, value, message):
    out = add_abp(run, **{field: value}, ok=False).output
    assert message in out
    assert sessions(db_path) == [] and json.loads(run("devices", "list", "--json").output) == []


def test_a_devaddr_of_another_devices_session_is_refused(run, db_path):
    add_abp(run)
    out = add_abp(run, dev=OTHER, nwk=APP, app=NWK, ok=False).output
    assert f"--devaddr: 260b0001 is already the session of device {DEV}" in out
    # refused as a whole: no half-registered device
    assert [d["id"] for d in json.loads(run("devices", "list", "--json").output)] == [DEV]
    assert [s[0] for s in sessions(db_path)] == [DEV]
    # the same device again (re-provisioning) may keep its DevAddr, with new keys
    add_abp(run, nwk=APP, app=NWK)
    assert sessions(db_path) == [(DEV, 0x260B0001, APP, NWK, None)]


def test_abp_options_without_activation_abp_are_refused(run, db_path):
    out = run("devices", "add", DEV, "--devaddr", DEVADDR, "--app-skey", APP, ok=False).output
    assert "--devaddr, --app-skey: only with --activation abp" in out
    out = run("devices", "add", DEV, "--activation", "otaa", "--nwk-skey", NWK, ok=False).output
    assert "--nwk-skey: only with --activation abp" in out
    assert json.loads(run("devices", "list", "--json").output) == []


def test_activation_abp_without_its_keys_is_refused(run, db_path):
    out = add_abp(run, nwk=None, app=None, ok=False).output
    assert "--activation abp needs --nwk-skey, --app-skey" in out
    out = add_abp(run, devaddr=None, ok=False).output
    assert "--activation abp needs --devaddr" in out
    assert json.loads(run("devices", "list", "--json").output) == [] and sessions(db_path) == []
