"""Modules in the browser, through the test client: add (given or made id and key), edit, remove
with a typed confirmation, show and rotate a key (admin, audited), roles, bridges."""

from __future__ import annotations

import json
import re
import time

from edge.store import connect
from tests.webui.helpers import BRIDGE, Module, add_device, csrf_token

DEV = "0011223344556677"


def _audit(db_path, action):
    return (
        connect(db_path).execute("SELECT * FROM audit_log WHERE action = ? ORDER BY id", (action,)).fetchall()
    )


def test_admin_adds_a_module_with_a_made_id_and_key_shown_once(app, admin, db_path):
    token = csrf_token(admin, "/devices")
    r = admin.post(
        "/devices/add",
        data={
            "csrf_token": token,
            "name": "pump house",
            "role": "node",
            "board": "heltec_v3",
            "codec": "lpp",
            "interval_s": "120",
        },
    )
    assert r.status_code == 201
    page = r.get_data(as_text=True)
    key = re.search(r'id="new-key-value">([0-9a-f]{32})<', page).group(1)
    row = connect(db_path).execute("SELECT * FROM devices WHERE name = 'pump house'").fetchone()
    assert bytes(row["key"]).hex() == key and row["board"] == "heltec_v3" and row["interval_s"] == 120
    assert key not in admin.get("/devices").get_data(as_text=True)  # shown once
    assert _audit(db_path, "device.add")[0]["target"] == row["id"]


def test_add_with_given_id_and_key_and_clear_errors(app, admin, db_path):
    token = csrf_token(admin, "/devices")
    base = {"csrf_token": token, "role": "node", "board": "", "codec": "lpp", "interval_s": "300"}
    bad = admin.post("/devices/add", data={**base, "device_id": "xyz", "key": "00" * 15, "interval_s": "5"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "Enter 16 hex digits" in text and "Enter 32 hex digits" in text and "between 10 and 86400" in text
    ok = admin.post("/devices/add", data={**base, "device_id": DEV.upper(), "key": "ab" * 16})
    assert ok.status_code == 201
    assert (
        bytes(connect(db_path).execute("SELECT key FROM devices WHERE id = ?", (DEV,)).fetchone()[0])
        == b"\xab" * 16
    )
    again = admin.post("/devices/add", data={**base, "device_id": DEV})
    assert again.status_code == 400 and "registered already" in again.get_data(as_text=True)


def test_operator_edits_and_the_interval_goes_to_the_module(app, operator, db_path):
    add_device(db_path, DEV, name="old", interval_s=300)
    token = csrf_token(operator, f"/devices/{DEV}/manage")
    r = operator.post(
        f"/devices/{DEV}/edit",
        data={
            "csrf_token": token,
            "name": "<b>new</b>",
            "board": "pico_rfm95w",
            "codec": "lpp",
            "interval_s": "600",
            "send_interval": "y",
        },
    )
    assert r.status_code == 302
    conn = connect(db_path)
    row = conn.execute("SELECT * FROM devices WHERE id = ?", (DEV,)).fetchone()
    assert (row["name"], row["board"], row["interval_s"]) == ("<b>new</b>", "pico_rfm95w", 600)
    dl = conn.execute("SELECT command, args FROM downlinks WHERE device_id = ?", (DEV,)).fetchone()
    assert dl["command"] == "set_interval" and json.loads(dl["args"]) == {"seconds": 600}
    assert _audit(db_path, "device.update")[0]["actor"] == "oscar"
    assert "&lt;b&gt;new&lt;/b&gt;" in operator.get("/devices").get_data(as_text=True)
    # the operator neither adds, removes nor sees keys
    for path in (
        "/devices/add",
        f"/devices/{DEV}/remove",
        f"/devices/{DEV}/key",
        f"/devices/{DEV}/rotate-key",
    ):
        assert operator.post(path, data={"csrf_token": token, "confirm": DEV}).status_code == 403, path


def test_key_shown_and_rotated_by_an_admin_are_audited(app, admin, db_path):
    key = add_device(db_path, DEV, key=bytes(range(16)))
    token = csrf_token(admin, f"/devices/{DEV}/manage")
    shown = admin.post(f"/devices/{DEV}/key", data={"csrf_token": token}).get_data(as_text=True)
    assert key.hex() in shown
    assert _audit(db_path, "device.show_key")[0]["actor"] == "alice"
    rotated = admin.post(f"/devices/{DEV}/rotate-key", data={"csrf_token": token}).get_data(as_text=True)
    new = re.search(r'id="key-value">([0-9a-f]{32})<', rotated).group(1)
    assert new != key.hex()
    assert (
        bytes(connect(db_path).execute("SELECT key FROM devices WHERE id = ?", (DEV,)).fetchone()[0]).hex()
        == new
    )
    assert _audit(db_path, "device.rotate_key")[0]["actor"] == "alice"


def test_remove_needs_the_typed_id(app, admin, db_path):
    add_device(db_path, DEV)
    Module(db_path, DEV).reading()
    token = csrf_token(admin, f"/devices/{DEV}/manage")
    wrong = admin.post(f"/devices/{DEV}/remove", data={"csrf_token": token, "confirm": "yes"})
    assert wrong.status_code == 400 and "nothing was deleted" in wrong.get_data(as_text=True)
    assert connect(db_path).execute("SELECT count(*) FROM devices").fetchone()[0] == 1
    ok = admin.post(f"/devices/{DEV}/remove", data={"csrf_token": token, "confirm": DEV})
    assert ok.status_code == 302
    conn = connect(db_path)
    assert conn.execute("SELECT count(*) FROM devices").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 1  # the cloud has not had it: kept
    assert _audit(db_path, "device.remove")[0]["actor"] == "alice"


def test_bridges_are_relaying_while_a_node_heard_through_them_is_online(app, admin, db_path):
    add_device(db_path, BRIDGE, name="roof bridge")
    connect(db_path).execute("UPDATE devices SET role = 'bridge' WHERE id = ?", (BRIDGE,))
    add_device(db_path, DEV, name="cellar", interval_s=60)
    Module(db_path, DEV).reading(now=time.time() - 10)  # the helper's frames come through BRIDGE
    page = admin.get("/devices").get_data(as_text=True)
    card = page.split(f'id="bridge-{BRIDGE}"')[1].split("</li>")[0]
    assert "relaying" in card and "cellar" in card and "1 node(s)" in card
    connect(db_path).execute("UPDATE devices SET last_seen = ? WHERE id = ?", (time.time() - 3600, DEV))
    card = admin.get("/devices").get_data(as_text=True).split(f'id="bridge-{BRIDGE}"')[1].split("</li>")[0]
    assert "silent" in card


def test_bridges_follow_the_live_link_when_the_panel_has_one(app, admin, db_path):
    add_device(db_path, BRIDGE, name="roof bridge")
    connect(db_path).execute("UPDATE devices SET role = 'bridge' WHERE id = ?", (BRIDGE,))
    links = [
        {
            "peer_id": BRIDGE,
            "up": True,
            "path": "/dev/ttyUSB0",
            "frames_rx": 42,
            "crc_errors": 1,
            "reconnects": 2,
        }
    ]
    app.extensions["fieldpost_links"] = lambda: links
    card = admin.get("/devices").get_data(as_text=True).split(f'id="bridge-{BRIDGE}"')[1].split("</li>")[0]
    assert "online" in card and "/dev/ttyUSB0" in card and "frames rx 42" in card and "crc errors 1" in card
    links[0]["up"] = False
    card = admin.get("/devices").get_data(as_text=True).split(f'id="bridge-{BRIDGE}"')[1].split("</li>")[0]
    assert "offline" in card


def test_the_overview_shows_a_relaying_bridge_as_up(app, admin, db_path):
    add_device(db_path, BRIDGE, name="roof bridge")
    connect(db_path).execute("UPDATE devices SET role = 'bridge' WHERE id = ?", (BRIDGE,))
    add_device(db_path, DEV, name="cellar", interval_s=60)
    row = admin.get("/").get_data(as_text=True).split(f'id="device-{BRIDGE}"')[1].split("</tr>")[0]
    assert "silent" in row and "never" in row  # nothing relayed yet
    Module(db_path, DEV).reading(now=time.time() - 10)
    row = admin.get("/").get_data(as_text=True).split(f'id="device-{BRIDGE}"')[1].split("</tr>")[0]
    assert "relaying" in row and "badge-ok" in row and "never" not in row
    app.extensions["fieldpost_links"] = lambda: [{"peer_id": BRIDGE, "up": True}]
    row = admin.get("/").get_data(as_text=True).split(f'id="device-{BRIDGE}"')[1].split("</tr>")[0]
    assert ">online<" in row


def test_a_module_with_an_old_board_profile_can_still_be_renamed(app, operator, db_path):
    add_device(db_path, DEV, name="old")
    connect(db_path).execute("UPDATE devices SET board = 'retired_board_v1' WHERE id = ?", (DEV,))
    token = csrf_token(operator, f"/devices/{DEV}/manage")
    r = operator.post(
        f"/devices/{DEV}/edit",
        data={
            "csrf_token": token,
            "name": "renamed",
            "board": "retired_board_v1",
            "codec": "lpp",
            "interval_s": "300",
        },
    )
    assert r.status_code == 302
    assert (
        connect(db_path).execute("SELECT name FROM devices WHERE id = ?", (DEV,)).fetchone()[0] == "renamed"
    )


def test_firmware_versions_and_updates_in_progress_are_shown(app, operator, db_path):
    from edge.fuota import jobs
    from edge.store import transaction

    add_device(db_path, BRIDGE, name="roof bridge")
    conn = connect(db_path)
    conn.execute(
        "UPDATE devices SET role = 'bridge', firmware = '0.3.0', board = 'unix' WHERE id = ?", (BRIDGE,)
    )
    with transaction(conn):
        job = jobs.queue(
            conn,
            BRIDGE,
            board="unix",
            version="0.4.0",
            from_version="0.3.0",
            package="/var/lib/fieldpost/firmware/packages/x.fpup",
            sha256="ab" * 32,
            size=80_000,
            now=time.time(),
        )
        jobs.progress(conn, job, 20_000, now=time.time())
    page = operator.get("/devices").get_data(as_text=True)
    assert "firmware 0.3.0" in page.split(f'id="bridge-{BRIDGE}"')[1].split("</li>")[0]
    card = page.split(f'id="update-{job}"')[1].split("</li>")[0]
    assert "0.3.0 → <strong>0.4.0</strong>" in card and "sending" in card
    assert 'max="80000" value="20000"' in card
    assert "over the serial link" in card
    # a node's update over the air, beside it: its version, its progress, both counted under way
    add_device(db_path, DEV, name="field node")
    conn.execute("UPDATE devices SET firmware = '0.3.0', board = 'unix' WHERE id = ?", (DEV,))
    with transaction(conn):
        node_job = jobs.queue(
            conn,
            DEV,
            board="unix",
            version="0.4.0",
            from_version="0.3.0",
            package="/var/lib/fieldpost/firmware/packages/y.fpup",
            sha256="cd" * 32,
            size=7_000,
            now=time.time(),
            transport="air",
        )
        jobs.progress(conn, node_job, 1_400, now=time.time())
    page = operator.get("/devices").get_data(as_text=True)
    assert "firmware 0.3.0" in page.split(f'id="node-{DEV}"')[1].split("</li>")[0]
    card = page.split(f'id="update-{node_job}"')[1].split("</li>")[0]
    assert "over the air" in card and 'max="7000" value="1400"' in card and "sending" in card
    assert '<span id="updates-in-flight">2 under way</span>' in page
    # how it ended, with the module's reason shown escaped
    with transaction(conn):
        jobs.finish(conn, job, "failed", error="commit refused: <stage: board>", now=time.time())
    card = operator.get("/devices").get_data(as_text=True).split(f'id="update-{job}"')[1].split("</li>")[0]
    assert "failed" in card and "&lt;stage: board&gt;" in card and "<stage" not in card
