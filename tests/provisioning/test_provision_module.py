"""`fieldpost provision module` against virtual modules: the real MicroPython REPL on a pty,
driven by mpremote; then the provisioned firmware talks to a real edge link and ingest."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import time

import pytest
from click.testing import CliRunner
from edge_firmware_site import free_udp_ports  # tests/edge, put on sys.path by conftest.py

from edge.ingest.process import handle_uplink
from edge.link.frame import FrameType
from edge.link.port import LinkPort
from edge.link.session import Received
from edge.radio import AckResult, build_serial_uplink, build_uplink
from edge.sim import open_raw_pty
from edge.store import connect, transaction
from edge.store.numbers import Numbers
from edge.store.query import ReadingReader
from edge.tools.build_firmware import find_mpy_cross
from provisioning.cli import provision_group
from provisioning.testing import BlankModule

TEST_PACKAGE = "fp-test-driver"
# a module that sends its own readings, its time running 200x, one reading every 10 s
RUNNING = ("--set", "own_readings=true", "--set", "time_scale=200", "--interval", "10")


@pytest.fixture(scope="session")
def offline_index(tmp_path_factory):
    """A local mip index in the micropython.org/pi/v2 layout with one small compiled package."""
    root = tmp_path_factory.mktemp("mip-index")
    src = root / "fptest_driver.py"
    src.write_text("VERSION = const(3)\n\ndef chip():\n    return 'fake-sx'\n")
    mpy = root / "fptest_driver.mpy"
    subprocess.run([find_mpy_cross(), "-o", str(mpy), str(src)], check=True)
    data = mpy.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:8]
    (root / "file" / digest[:2]).mkdir(parents=True)
    (root / "file" / digest[:2] / digest).write_bytes(data)
    # the unix port's mpy version is 6: that is the index subdirectory mip asks for
    pkg = root / "package" / "6" / TEST_PACKAGE
    pkg.mkdir(parents=True)
    (pkg / "latest.json").write_text(json.dumps({"hashes": [["fptest_driver.mpy", digest]], "version": "3"}))
    return root


def invoke(module, db, cache, *extra, obj=None):
    args = [
        "module",
        "--port",
        module.port,
        "--board",
        "unix",
        "--role",
        "bridge",
        "--db",
        str(db),
        "--cache-dir",
        str(cache),
        "--hello-timeout",
        "10",
        "--timeout",
        "5",
        *extra,
    ]
    return CliRunner().invoke(provision_group, args, obj=obj if obj is not None else {"reset": module.reset})


def device_rows(db):
    conn = connect(db)
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM devices")]
    finally:
        conn.close()


def audit_count(db):
    conn = connect(db)
    try:
        return conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    finally:
        conn.close()


class EdgeSide:
    """The edge's link on the module's port, feeding UPLINKs through the real ingest transaction."""

    def __init__(self, port, db):
        self.conn = connect(db)
        self.numbers = Numbers()
        self.events: queue.Queue = queue.Queue()
        self.link = LinkPort(port, hello={"edge": "test", "time": int(time.time())}, on_event=self.events.put)
        self.outcomes = []

    def __enter__(self):
        self.link.open()
        return self

    def __exit__(self, *exc):
        self.link.close()
        self.conn.close()

    def pump_until(self, predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(event, Received):
                frame = event.frame
                if frame.type == FrameType.UPLINK:
                    with transaction(self.conn):
                        outcome = handle_uplink(
                            self.conn,
                            frame.payload,
                            bridge_id=self.link.peer.get("id"),
                            numbers=self.numbers,
                            now=time.time(),
                        )
                    self.outcomes.append(outcome)
                    self.link.ack(frame.seq, outcome.ack)
                else:
                    self.link.ack(frame.seq, b"")
            if predicate(self.outcomes):
                return True
        return False

    def ingest(self, payload: bytes):
        with transaction(self.conn):
            return handle_uplink(self.conn, payload, bridge_id=None, numbers=self.numbers, now=time.time())


def stored(outcomes):
    return [o for o in outcomes if o.result == AckResult.STORED]


def provision_and_run(blank_module, edge_db, mpy_cache, offline_index):
    result = invoke(
        blank_module,
        edge_db,
        mpy_cache,
        *RUNNING,
        "--name",
        "tank-1",
        "--package",
        TEST_PACKAGE,
        "--offline-packages",
        str(offline_index),
    )
    assert result.exit_code == 0, result.output
    return result


def test_blank_module_end_to_end(blank_module, edge_db, mpy_cache, offline_index):
    result = provision_and_run(blank_module, edge_db, mpy_cache, offline_index)
    assert "hello      fw" in result.output and f"{TEST_PACKAGE}: installed" in result.output

    config = json.loads((blank_module.flash / "config.json").read_text())
    [device] = device_rows(edge_db)
    assert device["id"] == config["id"] and bytes(device["key"]).hex() == config["key"]
    assert (device["board"], device["role"], device["name"], device["interval_s"]) == (
        "unix",
        "bridge",
        "tank-1",
        10,
    )
    assert config["role"] == "bridge" and config["own_readings"] is True
    assert (blank_module.flash / "fp" / "app.mpy").exists() and (blank_module.flash / "board.json").exists()
    assert (blank_module.flash / "lib" / "fptest_driver.mpy").exists()  # mip, from the local index
    assert blank_module.resets == 1

    # The module boots the firmware it was given and its readings pass the edge's MIC check.
    with EdgeSide(blank_module.port, edge_db) as edge:
        assert edge.pump_until(lambda outs: len(stored(outs)) >= 2), [o.detail for o in edge.outcomes]
    assert all(o.device_id == device["id"] for o in stored(edge.outcomes))
    conn = connect(edge_db)
    reader = ReadingReader(conn)
    try:
        rows = list(reader.device_readings(device["id"]))
        assert len(rows) >= 2 and "temperature" in [v["name"] for v in reader.values(rows[0])]
    finally:
        reader.close()
        conn.close()


def test_rerun_changes_nothing(blank_module, edge_db, mpy_cache, offline_index):
    provision_and_run(blank_module, edge_db, mpy_cache, offline_index)
    with EdgeSide(blank_module.port, edge_db) as edge:
        assert edge.pump_until(lambda outs: len(stored(outs)) >= 1)
    before_rows, before_audit = device_rows(edge_db), audit_count(edge_db)
    files_before = {p: p.read_bytes() for p in blank_module.flash.rglob("*.mpy")}
    config_before = (blank_module.flash / "config.json").read_bytes()

    # A running virtual module has no REPL on its link: power-cycle it into the REPL, as an
    # operator holds a board in its REPL to re-provision it.
    blank_module.back_to_repl()
    again = provision_and_run(blank_module, edge_db, mpy_cache, offline_index)
    assert "0 copied" in again.output and "edge       unchanged" in again.output
    assert f"{TEST_PACKAGE}: up to date" in again.output and "nothing to change" in again.output
    assert device_rows(edge_db) == before_rows  # same key, and the replay floor was not reset
    assert audit_count(edge_db) == before_audit
    assert (blank_module.flash / "config.json").read_bytes() == config_before
    assert {p: p.read_bytes() for p in blank_module.flash.rglob("*.mpy")} == files_before


def test_rotate_key(blank_module, edge_db, mpy_cache):
    # First provisioning without the reset: the module stays in its REPL, no old-key readings are queued.
    first = invoke(
        blank_module,
        edge_db,
        mpy_cache,
        "--no-reset",
        *RUNNING,
        "--name",
        "tank-1",
    )
    assert first.exit_code == 0, first.output
    [old] = device_rows(edge_db)
    old_key = bytes(old["key"])

    result = invoke(
        blank_module,
        edge_db,
        mpy_cache,
        "--rotate-key",
        *RUNNING,
        "--name",
        "tank-1",
    )
    assert result.exit_code == 0, result.output
    assert "key rotated (new key)" in result.output and "1 copied" in result.output  # config.json only
    [new] = device_rows(edge_db)
    new_key = bytes(new["key"])
    assert new["id"] == old["id"] and new_key != old_key and new["last_fcnt"] == -1
    assert json.loads((blank_module.flash / "config.json").read_text())["key"] == new_key.hex()

    with EdgeSide(blank_module.port, edge_db) as edge:
        # The real module now signs with the new key: accepted.
        assert edge.pump_until(lambda outs: len(stored(outs)) >= 1), [o.detail for o in edge.outcomes]
        # A frame signed with the old key is refused; the same frame with the new key passes.
        payload = bytes.fromhex("0167010a")  # LPP temperature 26.6 on channel 1
        forged = build_serial_uplink(build_uplink(old_key, old["id"], 1_000_000, 1, payload))
        assert edge.ingest(forged).result == AckResult.BAD_MIC
        genuine = build_serial_uplink(build_uplink(new_key, old["id"], 1_000_000, 1, payload))
        assert edge.ingest(genuine).result == AckResult.STORED


def test_wrong_port(edge_db, mpy_cache, tmp_path):
    args = [
        "module",
        "--port",
        str(tmp_path / "ttyUSB9"),
        "--board",
        "unix",
        "--role",
        "node",
        "--db",
        str(edge_db),
        "--cache-dir",
        str(mpy_cache),
    ]
    result = CliRunner().invoke(provision_group, args)
    assert result.exit_code != 0
    assert "port: cannot open" in result.output and "nothing was registered" in result.output
    assert device_rows(edge_db) == []


def test_unknown_board(blank_module, edge_db, mpy_cache):
    result = invoke(blank_module, edge_db, mpy_cache, "--board", "heltec_v9")
    assert result.exit_code != 0
    assert "--board: unknown board 'heltec_v9'" in result.output and "heltec_v2" in result.output
    assert device_rows(edge_db) == []
    assert os.listdir(blank_module.flash) == []  # the module was not touched


def test_module_that_does_not_answer(edge_db, mpy_cache):
    master, slave, path = open_raw_pty()  # a port with nothing behind it
    try:
        args = [
            "module",
            "--port",
            path,
            "--board",
            "unix",
            "--role",
            "node",
            "--db",
            str(edge_db),
            "--cache-dir",
            str(mpy_cache),
            "--timeout",
            "1",
        ]
        result = CliRunner().invoke(provision_group, args)
    finally:
        os.close(master)
        os.close(slave)
    assert result.exit_code != 0
    assert "no MicroPython REPL answered" in result.output and "nothing was registered" in result.output
    assert device_rows(edge_db) == []


def test_config_the_firmware_refuses_registers_nothing(blank_module, edge_db, mpy_cache):
    result = invoke(blank_module, edge_db, mpy_cache, "--set", "retry_base=0")
    assert result.exit_code != 0
    assert "retry_base" in result.output and "nothing was registered" in result.output
    assert device_rows(edge_db) == []
    # the refused config never became the module's config.json (checked under a scratch name)
    assert not (blank_module.flash / "config.json").exists()
    assert not (blank_module.flash / "config.check.json").exists()


def test_batch(tmp_path, edge_db, mpy_cache):
    modules = [BlankModule(tmp_path / f"flash{i}").start() for i in range(2)]
    try:
        by_port = {m.port: m for m in modules}
        manifest = tmp_path / "modules.csv"
        manifest.write_text(
            "port,board,role,name,interval\n"
            f"{modules[0].port},unix,bridge,north,60\n"
            f"{tmp_path / 'ttyGONE'},unix,node,ghost,60\n"
            f"{modules[1].port},unix,bridge,south,120\n"
        )
        args = [
            "batch",
            str(manifest),
            "--db",
            str(edge_db),
            "--cache-dir",
            str(mpy_cache),
            "--hello-timeout",
            "10",
        ]
        result = CliRunner().invoke(
            provision_group, args, obj={"reset": lambda repl: by_port[repl.port].reset(repl)}
        )
    finally:
        for m in modules:
            m.close()
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("row 2") and " ok " in line and "added" in line for line in lines)
    assert any(line.startswith("row 3") and "FAILED" in line and "cannot open" in line for line in lines)
    assert any(line.startswith("row 4") and " ok " in line for line in lines)
    assert "2 of 3 modules provisioned" in result.output
    assert sorted((d["name"], d["interval_s"]) for d in device_rows(edge_db)) == [
        ("north", 60),
        ("south", 120),
    ]


def test_node_through_a_provisioned_bridge(tmp_path, edge_db, mpy_cache):
    """A bridge and then a node provisioned on the loopback air, with the real edge daemon running:
    `--wait-uplink` returns once the daemon stored a node reading, carried by the bridge and signed
    with the node's own provisioned key."""
    from edge import config as config_mod
    from edge.daemon import Daemon

    node_port, bridge_port = free_udp_ports(2)
    node, bridge = BlankModule(tmp_path / "node").start(), BlankModule(tmp_path / "bridge").start()
    daemon = None
    try:
        common = [
            "--db",
            str(edge_db),
            "--cache-dir",
            str(mpy_cache),
            "--hello-timeout",
            "10",
            "--set",
            "time_scale=200",
            # 30 virtual s are 150 real ms: room for the join accept to come back through the daemon
            "--set",
            "rx_window=30",
            "--interval",
            "10",
        ]
        r = CliRunner().invoke(
            provision_group,
            [
                "module",
                "--port",
                bridge.port,
                "--board",
                "unix",
                "--role",
                "bridge",
                "--name",
                "gate",
                *common,
                "--set",
                json_arg("air", {"port": bridge_port, "peers": [node_port]}),
            ],
            obj={"reset": bridge.reset},
        )
        assert r.exit_code == 0, r.output
        cfg = config_mod.from_dict(
            {
                "edge": {"db": str(edge_db), "services": False},
                "link": {"ports": [bridge.port], "discover": False},
                "http": {"enabled": False},
            }
        )
        daemon = Daemon(cfg, attach_points=()).start()
        r = CliRunner().invoke(
            provision_group,
            [
                "module",
                "--port",
                node.port,
                "--board",
                "unix",
                "--role",
                "node",
                "--name",
                "field-7",
                *common,
                "--set",
                json_arg("air", {"port": node_port, "peers": [bridge_port]}),
                "--wait-uplink",
                "20",
            ],
            obj={"reset": node.reset},
        )
        assert r.exit_code == 0, r.output
        assert "uplink     stored by the edge" in r.output
    finally:
        if daemon is not None:
            daemon.stop()
        node.close()
        bridge.close()
    rows = {d["role"]: d for d in device_rows(edge_db)}
    conn = connect(edge_db)
    try:
        row = conn.execute(
            "SELECT bridge_id FROM reading_list WHERE device_id = ?", (rows["node"]["id"],)
        ).fetchone()
        assert row["bridge_id"] == rows["bridge"]["id"]
    finally:
        conn.close()


def json_arg(key, value):
    return f"{key}={json.dumps(value)}"


def test_port_held_by_another_program(blank_module, edge_db, mpy_cache):
    import serial

    holder = serial.Serial(blank_module.port, 115200, exclusive=True)
    try:
        result = invoke(blank_module, edge_db, mpy_cache)
    finally:
        holder.close()
    assert result.exit_code != 0
    assert "another program holds the port" in result.output and "nothing was registered" in result.output
    assert device_rows(edge_db) == []


def test_rotate_key_notes_waiting_readings_go_out_under_the_new_key(blank_module, edge_db, mpy_cache):
    from provisioning.journal import pending_fcnts

    first = invoke(
        blank_module,
        edge_db,
        mpy_cache,
        *RUNNING,
    )
    assert first.exit_code == 0, first.output
    journal = blank_module.flash / "journal"

    def pending():  # no edge answers: the module's readings stay in its journal (unsigned, format 2)
        return (
            pending_fcnts({p.name: p.read_bytes() for p in journal.glob("s*.j")})
            if journal.exists()
            else set()
        )

    deadline = time.monotonic() + 15
    while len(pending()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(pending()) >= 2
    blank_module.back_to_repl()
    count = len(pending())
    rotated = invoke(
        blank_module,
        edge_db,
        mpy_cache,
        "--rotate-key",
        *RUNNING,
    )
    assert rotated.exit_code == 0, rotated.output
    # the firmware signs journaled readings when it sends them (firmware/fp/journal.py): they go
    # out under the new key, so this is a note, no longer a warning
    note = f"note       {count} reading(s) waiting in the module's journal will be sent signed with the new"
    assert note in rotated.output


def test_node_with_no_bridge_in_range_reports_no_uplink(blank_module, edge_db, mpy_cache):
    result = invoke(blank_module, edge_db, mpy_cache, "--role", "node", "--wait-uplink", "1")
    assert result.exit_code != 0
    assert "uplink: the edge stored no uplink" in result.output
    assert "written and registered" in result.output  # what state it is in, so the operator knows
    assert len(device_rows(edge_db)) == 1
