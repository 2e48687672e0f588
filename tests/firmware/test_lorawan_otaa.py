"""The node's OTAA activation under MicroPython against what the edge's join server answers."""

from __future__ import annotations

import json
import struct

import pytest

from edge import registry
from edge.ingest import handle_uplink
from edge.lorawan import frames as F
from edge.radio import AckResult, build_serial_uplink
from edge.store import connect, migrate, transaction
from edge.store.numbers import Numbers
from tests.firmware.conftest import run_mp

pytestmark = pytest.mark.firmware

DEV, APP_KEY, JOIN_EUI = "0123456789abcdef", bytes(range(1, 17)), "70b3d57ed00000dc"
READING = bytes.fromhex("016700d702686103020173")


def test_node_joins_keeps_its_session_and_never_reuses_a_dev_nonce(micropython, tmp_path):
    conn = connect(tmp_path / "edge.db")
    migrate(conn)
    registry.add_device(conn, DEV, key=APP_KEY, actor="test", now=1.0)
    with transaction(conn):
        conn.execute("UPDATE devices SET join_eui = ? WHERE id = ?", (JOIN_EUI, DEV))
    # the request the node will send after a reboot (DevNonce 9: 1..8 reserved before it), answered
    request = F.build_join_request(APP_KEY, bytes.fromhex(JOIN_EUI), bytes.fromhex(DEV), 9)
    with transaction(conn):
        out = handle_uplink(conn, build_serial_uplink(request), bridge_id=None, numbers=Numbers(), now=2.0)
    assert out.result == AckResult.JOINED
    accept = out.ack[1:]
    join_nonce, net_id, devaddr, *_ = F.open_join_accept(APP_KEY, accept)
    nwk, app = F.session_keys(APP_KEY, join_nonce, net_id, 9)
    announcement = F.build_data(F.CONFIRMED_UP, devaddr, 0, 5, struct.pack(">I", 7), nwk_key=nwk, app_key=app)
    with transaction(conn):
        out = handle_uplink(
            conn, build_serial_uplink(announcement), bridge_id=None, numbers=Numbers(), now=3.0
        )
    assert out.result == AckResult.STORED
    case = {
        "dev_eui": DEV,
        "app_key": APP_KEY.hex(),
        "join_eui": JOIN_EUI,
        "join_request": request.hex(),
        "join_accept": accept.hex(),
        "devaddr": devaddr,
        "announcement": announcement.hex(),
        "reading": READING.hex(),
        "uplink_fcnt3": F.build_data(F.CONFIRMED_UP, devaddr, 3, 1, READING, nwk_key=nwk, app_key=app).hex(),
        "ack0": out.ack[1:].hex(),  # the edge's ACK of the session start: NFCntDown 0
    }
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case))
    result = run_mp("check_otaa.py", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("FAIL")] == []
    assert lines[-1] == "OK 11"
