import json
import threading
from pathlib import Path

import pytest
from edge_helpers import add, decoded, stored, uplink, v1_network

from edge import downlinks, radio, registry
from edge.codecs import lpp
from edge.ingest import Backpressure, Ingestor, handle_uplink
from edge.radio import AckResult
from edge.store import connect, transaction
from edge.store.numbers import Numbers

DEV = "00000000000000b1"
# These tests are about the ingest core, run on Fieldpost v1 frames (an edge with accept_v1): what
# is particular to LoRaWAN frames is in test_edge_lorawan_server.py


def run(db, codecs, payload, now=1_700_000_100.0, bridge="bridge0000000001"):
    with transaction(db):
        return handle_uplink(db, payload, bridge_id=bridge, numbers=Numbers(), now=now, network=v1_network())


def test_new_reading_stored_once_raw_with_its_radio_metadata_and_acked(db, codecs):
    key = add(db, DEV)
    out = run(db, codecs, uplink(key, DEV, 5, rx_time=1_700_000_099))
    assert out.result == AckResult.STORED
    assert out.ack[0] == 0
    down = radio.parse_frame(out.ack[1:], kind=radio.KIND_DOWNLINK)
    assert (down.device_id, down.fcnt, down.port) == (DEV, 5, 0) and down.mic_ok(key)
    (reading,) = stored(db)
    assert (reading.msg_id, reading.rssi, reading.snr, reading.bridge_id, reading.received_at) == (
        f"{DEV}:5",
        -80,
        7.25,
        "bridge0000000001",
        1_700_000_100.0,
    )
    assert reading.rx_time == 1_700_000_099  # the bridge's clock, kept as its skew from the edge's
    # Values are derived from the raw payload when read; nothing decoded and no outbox copy is stored.
    values, error = decoded(db, reading)
    assert error is None and values[0] == {"channel": 1, "name": "temperature", "value": 21.5, "unit": "°C"}
    assert values[2] == {"channel": 3, "name": "voltage", "value": 3.7, "unit": "V"}
    assert db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    columns = [r[1] for r in db.execute("PRAGMA table_info(readings)")]
    assert columns == ["id", "received_ms", "port", "rssi", "snr_q", "bridge", "skew_s", "raw", "age_s"]
    dev = db.execute("SELECT last_fcnt, last_rssi, last_bridge FROM devices").fetchone()
    assert tuple(dev) == (5, -80, "bridge0000000001")
    assert out.reading.raw == reading.raw and out.reading.codec == "lpp"


def test_the_reading_id_is_the_dedupe_key_no_index_needed(db, codecs):
    key = add(db, DEV)
    run(db, codecs, uplink(key, DEV, 5))
    # readings has no index of its own: the (device, fcnt) key is the rowid
    assert (
        db.execute(
            "SELECT count(*) FROM sqlite_schema WHERE tbl_name = 'readings' AND type = 'index'"
        ).fetchone()[0]
        == 0
    )
    (number,) = db.execute("SELECT n FROM device_numbers WHERE id = ?", (DEV,)).fetchone()
    assert db.execute("SELECT id FROM readings").fetchone()[0] == number << 32 | 5
    plan = " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN SELECT * FROM readings WHERE id = ?", (1,)))
    assert "INTEGER PRIMARY KEY" in plan


def test_duplicate_is_acked_again_and_stored_once(db, codecs):
    key = add(db, DEV)
    assert run(db, codecs, uplink(key, DEV, 5)).result == AckResult.STORED
    again = run(db, codecs, uplink(key, DEV, 5))
    assert again.result == AckResult.DUPLICATE and again.ack[0] == 1 and len(again.ack) > 1
    assert len(stored(db)) == 1


def test_same_fcnt_other_payload_under_the_same_key_is_refused_not_acked_as_duplicate(db, codecs):
    # The counter went back (a module reset without re-provisioning): acknowledging this frame as a
    # "duplicate" would make the module drop a reading nobody stored.
    key = add(db, DEV)
    assert run(db, codecs, uplink(key, DEV, 5)).result == AckResult.STORED
    other = run(db, codecs, uplink(key, DEV, 5, payload=b"\x01\x67\x00\x01"))
    assert other.result == AckResult.REPLAYED and other.ack == b"\x03"
    assert [r.raw for r in stored(db)] == [uplink_payload_raw()]


def uplink_payload_raw() -> bytes:
    from edge_helpers import STANDARD

    from edge.codecs import lpp

    return lpp.encode(STANDARD)


def test_a_batch_with_the_same_frame_twice_stores_it_once(db, codecs):
    from edge.ingest.process import handle_batch

    key = add(db, DEV)
    frame = uplink(key, DEV, 9)
    with transaction(db):
        outs = handle_batch(
            db,
            [(frame, "b"), (frame, "b"), (uplink(key, DEV, 8), "b")],
            numbers=Numbers(),
            now=1.0,
            network=v1_network(),
        )
    assert [o.result for o in outs] == [AckResult.STORED, AckResult.DUPLICATE, AckResult.REPLAYED]
    assert [r.fcnt for r in stored(db)] == [9]


def test_bad_mic_replay_unknown_malformed(db, codecs):
    key = add(db, DEV)
    assert run(db, codecs, uplink(bytes(16), DEV, 1)).result == AckResult.BAD_MIC
    assert run(db, codecs, uplink(key, DEV, 10)).result == AckResult.STORED
    replay = run(db, codecs, uplink(key, DEV, 9))
    assert replay.result == AckResult.REPLAYED and replay.ack == b"\x03"
    unknown = run(db, codecs, uplink(key, "00000000000000ff", 1), bridge="b")
    assert unknown.result == AckResult.UNKNOWN_DEVICE and unknown.ack == b"\x04"
    assert run(db, codecs, b"\x00\x01garbage").result == AckResult.MALFORMED
    q = db.execute("SELECT device_id, count, last_bridge FROM quarantine").fetchone()
    assert tuple(q) == ("00000000000000ff", 1, "b")
    assert len(stored(db)) == 1


def test_counter_reset_only_after_reprovisioning(db, codecs):
    key = add(db, DEV)
    assert run(db, codecs, uplink(key, DEV, 100)).result == AckResult.STORED
    assert run(db, codecs, uplink(key, DEV, 0)).result == AckResult.REPLAYED
    new_key = add(db, DEV, now=1_700_000_200.0)  # re-provisioned: new key, floor reset
    assert run(db, codecs, uplink(new_key, DEV, 0), now=1_700_000_300.0).result == AckResult.STORED
    # the old key no longer works, and the new counter is again protected
    assert run(db, codecs, uplink(key, DEV, 1), now=1_700_000_301.0).result == AckResult.BAD_MIC
    assert run(db, codecs, uplink(new_key, DEV, 0), now=1_700_000_302.0).result == AckResult.DUPLICATE
    # a reset counter that reaches an fcnt stored under the old key with another reading cannot
    # overwrite it (the same reading sent again is a duplicate: see the key rotation test below)
    other = uplink(new_key, DEV, 100, payload=b"\x01\x67\x00\x00")
    assert run(db, codecs, other, now=1_700_000_303.0).result == AckResult.REPLAYED


def test_reading_stored_before_key_rotation_is_a_duplicate_when_resent_under_the_new_key(db, codecs):
    # The wedge this prevents: fcnt 7 stored and its ACK (with a downlink) lost, then the key rotated.
    # The node's journal keeps frames unsigned and signs them when sent, so fcnt 7 comes back under
    # the new key; "replayed" would make it retry that frame for ever, blocking everything behind it.
    key = add(db, DEV)
    dl = downlinks.queue(db, DEV, "set_interval", {"seconds": 60}, source="cli", now=1_700_000_000.0)
    first = run(db, codecs, uplink(key, DEV, 7), now=1_700_000_100.0)
    assert first.result == AckResult.STORED and downlinks.get(db, dl)["status"] == "sent"
    new_key = registry.rotate_key(db, DEV, actor="test", now=1_700_000_200.0)

    again = run(db, codecs, uplink(new_key, DEV, 7, rssi=-90), now=1_700_000_300.0)
    assert again.result == AckResult.DUPLICATE and again.ack[0] == 1
    # the ACK carries the downlink frame for fcnt 7 under the NEW key, with the command sent before
    down = radio.parse_frame(again.ack[1:], kind=radio.KIND_DOWNLINK)
    assert (down.device_id, down.fcnt, down.port) == (DEV, 7, 3) and down.mic_ok(new_key)
    assert not down.mic_ok(key)
    assert down.payload == radio.encode_command(dl, "set_interval", {"seconds": 60})
    # the same answer each time it comes back; nothing stored twice, nothing overwritten
    assert run(db, codecs, uplink(new_key, DEV, 7), now=1_700_000_301.0).result == AckResult.DUPLICATE
    (reading,) = stored(db)
    assert (reading.received_at, reading.rssi) == (1_700_000_100.0, -80)
    # the node's queue moves on
    assert run(db, codecs, uplink(new_key, DEV, 8), now=1_700_000_302.0).result == AckResult.STORED

    # another payload, or another port, at the stored fcnt is not that reading: a replay
    other = uplink(new_key, DEV, 7, payload=b"\x01\x67\x00\x00")
    assert run(db, codecs, other, now=1_700_000_303.0).result == AckResult.REPLAYED
    same_bytes_port_3 = run(
        db,
        codecs,
        uplink(
            new_key,
            DEV,
            7,
            port=3,
            payload=stored(db)[0].raw,
        ),
        now=1_700_000_304.0,
    )
    assert same_bytes_port_3.result == AckResult.REPLAYED
    # and the old key is refused, whatever it signs
    assert run(db, codecs, uplink(key, DEV, 7), now=1_700_000_305.0).result == AckResult.BAD_MIC
    assert len(stored(db)) == 2


def test_node_status_given_up_key_has_a_name(db, codecs):
    # the node's port-3 status (fp/device.py) says "f" for frames given up after refusals
    key = add(db, DEV)
    out = run(db, codecs, uplink(key, DEV, 1, port=3, payload=b'{"j":2,"f":3,"w":"mic"}'))
    assert out.result == AckResult.STORED
    values, _ = decoded(db, stored(db)[0])
    assert {"channel": 0, "name": "given_up", "value": 3, "unit": ""} in values
    assert [v["name"] for v in values] == ["journal", "given_up"]


def test_decode_failure_keeps_raw_and_records_error(db, codecs):
    key = add(db, DEV)
    out = run(db, codecs, uplink(key, DEV, 1, payload=b"\x01\xee\x00"))
    assert out.result == AckResult.STORED
    (reading,) = stored(db)
    values, error = decoded(db, reading)
    assert (reading.raw, values) == (b"\x01\xee\x00", None)
    assert "unknown LPP type 238" in error


def test_downlink_rides_on_ack_and_result_on_port_2(db, codecs):
    key = add(db, DEV)
    dl = downlinks.queue(db, DEV, "set_interval", {"seconds": 60}, source="cli", now=1_700_000_000.0)
    out = run(db, codecs, uplink(key, DEV, 1))
    down = radio.parse_frame(out.ack[1:], kind=radio.KIND_DOWNLINK)
    assert down.port == 3 and down.payload == radio.encode_command(dl, "set_interval", {"seconds": 60})
    assert downlinks.get(db, dl)["status"] == "sent"
    # the ACK was lost: the retransmitted uplink is a duplicate and gets the same downlink again
    assert run(db, codecs, uplink(key, DEV, 1)).ack == b"\x01" + out.ack[1:]
    res = run(db, codecs, uplink(key, DEV, 2, port=2, payload=dl.to_bytes(2, "big") + b"\x00"))
    assert res.result == AckResult.STORED
    assert downlinks.get(db, dl)["status"] == "acked"


def test_status_port_updates_device(db, codecs):
    key = add(db, DEV)
    run(db, codecs, uplink(key, DEV, 1, port=3, payload=b'{"battery":3.9,"uptime":12}'))
    assert json.loads(db.execute("SELECT status FROM devices").fetchone()[0]) == {
        "battery": 3.9,
        "uptime": 12,
    }
    assert [r.port for r in stored(db)] == [3]


def test_group_commit_acks_after_commit_and_runs_hooks(db_path, codecs, clock):
    writer_conn = connect(db_path)
    check = connect(db_path)
    key = add(check, DEV)
    seen_in_db_at_reply = []
    hooked = []
    ingest = Ingestor(writer_conn, clock=clock, batch_wait_s=0.05, network=v1_network())
    ingest.add_hook(lambda readings: hooked.extend(r.fcnt for r in readings))
    ingest.add_hook(lambda readings: 1 / 0)  # a broken hook must not stop ingest
    done = threading.Event()

    def reply_for(fcnt):
        def reply(ack):
            # Another connection sees the reading when the ACK goes out: it was committed first.
            n = sum(1 for r in stored(check, DEV) if r.fcnt == fcnt)
            seen_in_db_at_reply.append((fcnt, ack[0], n))
            if len(seen_in_db_at_reply) == 20:
                done.set()

        return reply

    ingest.start()
    try:
        for fcnt in range(1, 21):
            ingest.submit(uplink(key, DEV, fcnt), bridge_id="b", reply=reply_for(fcnt))
        assert done.wait(10)
    finally:
        ingest.stop()
        writer_conn.close()
    assert sorted(seen_in_db_at_reply) == [(f, 0, 1) for f in range(1, 21)]
    assert ingest.stats.batches < 20  # several frames per transaction
    assert ingest.stats.results["stored"] == 20
    assert sorted(hooked) == list(range(1, 21))
    check.close()


def test_stop_flushes_everything_submitted(db_path, codecs, clock):
    conn = connect(db_path)
    key = add(conn, DEV)
    replies = []
    ingest = Ingestor(conn, clock=clock, batch_wait_s=0.5, network=v1_network())
    ingest.start()
    for fcnt in range(1, 6):
        ingest.submit(uplink(key, DEV, fcnt), bridge_id=None, reply=replies.append)
    ingest.stop()
    assert len(replies) == 5
    assert len(stored(conn)) == 5
    conn.close()


def test_backpressure_hysteresis(db, clock):
    bp = Backpressure(high_water=10, resume_below=5)
    bp.refresh(db)
    assert bp.busy() is None
    bp.committed(10)
    assert "backlog 10 >= 10" in bp.busy()
    bp.unsynced = 7
    bp.committed(0)
    assert bp.busy() is not None  # still above the resume mark
    bp.refresh(db)  # sync drained the backlog: the database says 0
    assert bp.busy() is None
    assert bp.busy_refusals == 2
    bp.committed(12)
    bp.synced(8)  # what the cloud acknowledged comes off at once
    assert bp.unsynced == 4 and bp.busy() is None


def test_commit_failure_acks_nothing(db_path, codecs, clock):
    conn = connect(db_path)
    key = add(conn, DEV)
    blocker = connect(db_path, timeout=0.05)
    conn.execute("PRAGMA busy_timeout=50")
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock: the batch cannot commit
    replies, failures, told = [], [], []
    ingest = Ingestor(
        conn,
        clock=clock,
        on_commit_failed=lambda exc: told.append(exc) or "storage error",
        network=v1_network(),
    )
    from edge.ingest.writer import Item

    assert ingest.process_batch([Item(uplink(key, DEV, 1), None, replies.append, failures.append)]) is None
    assert replies == [] and failures == ["storage error"] and ingest.stats.commit_failures == 1
    assert "locked" in str(told[0])
    blocker.execute("ROLLBACK")
    assert stored(conn) == []
    blocker.close()
    conn.close()


VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "radio.json"


@pytest.mark.skipif(not VECTORS.exists(), reason="tests/vectors/radio.json not written yet")
def test_golden_bad_uplinks_get_their_ack_result(db, codecs):
    data = json.loads(VECTORS.read_text())
    vec0 = data["uplinks"][0]
    registry.add_device(db, vec0["device"], key=bytes.fromhex(vec0["key"]), actor="test", now=1.0)
    for vec in data["bad_uplinks"]:
        payload = radio.build_serial_uplink(bytes.fromhex(vec["hex"]))
        out = run(db, codecs, payload)
        assert out.ack == bytes([vec["ack_result"]]), vec["name"]
    for vec in data["uplinks"]:  # in fcnt order: 7, 16909060 ... skip those below the floor
        out = run(db, codecs, radio.build_serial_uplink(bytes.fromhex(vec["hex"])))
        assert out.result in (AckResult.STORED, AckResult.REPLAYED), vec["name"]
    from edge.store.query import ReadingReader

    battery = ReadingReader(db).battery(vec0["device"])
    assert battery == 2.9  # from the last stored standard reading, channel 3


def test_backpressure_resumes_with_a_tiny_mark(db, clock):
    bp = Backpressure(high_water=1, resume_below=0)
    bp.committed(1)
    assert bp.busy() is not None
    bp.refresh(db)  # nothing waits for the cloud
    assert bp.busy() is None


def test_a_reading_stored_below_the_sync_cursor_after_a_counter_restart_is_still_sent(db, codecs):
    from tests.storekit import mark_synced, unsynced_ids

    key = add(db, DEV)
    for fcnt in (10, 11, 12):
        assert run(db, codecs, uplink(key, DEV, fcnt)).result == AckResult.STORED
    mark_synced(db, DEV, 12)  # the cloud has all three
    assert unsynced_ids(db) == []
    new_key = add(db, DEV, now=1_700_000_200.0)  # re-provisioned: the counter starts over
    assert run(db, codecs, uplink(new_key, DEV, 0), now=1_700_000_300.0).result == AckResult.STORED
    # fcnt 0 waits for the cloud; the synced ones after it go again (the cloud drops them by id)
    assert [rid & 0xFFFFFFFF for rid in unsynced_ids(db)] == [0, 10, 11, 12]


def aged(age_s: int, readings: bytes) -> bytes:
    """A port-8 payload (docs/radio.md 0.9), LEB128 written here by hand."""
    out = bytearray()
    while True:
        out.append((age_s & 0x7F) | (0x80 if age_s >> 7 else 0))
        age_s >>= 7
        if not age_s:
            return bytes(out) + readings


def test_a_reading_that_waited_is_stored_with_its_age_and_measured_time(db, codecs):
    # Issue 13 item 9: stored as the port-1 reading it is, its age beside the receive time.
    from tests.storekit import STANDARD

    key = add(db, DEV)
    lpp_bytes = lpp.encode(STANDARD)
    now = 1_700_007_300.0
    out = run(db, codecs, uplink(key, DEV, 1, port=radio.PORT_AGED, payload=aged(7200, lpp_bytes)), now=now)
    assert out.result == AckResult.STORED and out.reading.age_s == 7200
    assert out.reading.measured_at == now - 7200  # what the rules and the live hooks see
    fresh = run(db, codecs, uplink(key, DEV, 2), now=now + 1)
    assert fresh.result == AckResult.STORED and fresh.reading.age_s is None
    first, second = stored(db, DEV)
    assert (first.port, first.raw, first.age_s) == (1, lpp_bytes, 7200)
    assert (first.received_at, first.measured_at) == (now, now - 7200)
    assert (second.age_s, second.measured_at) == (None, now + 1)
    values, error = decoded(db, first)
    assert error is None and values[0]["value"] == 21.5
    # sent fresh, its ACK lost, sent again after waiting: the same reading, a duplicate
    again = run(
        db, codecs, uplink(key, DEV, 2, port=radio.PORT_AGED, payload=aged(40, lpp_bytes)), now=now + 41
    )
    assert again.result == AckResult.DUPLICATE
    # a port-8 frame whose age is cut short is malformed, named so
    bad = run(db, codecs, uplink(key, DEV, 3, port=radio.PORT_AGED, payload=b"\x80"), now=now + 50)
    assert bad.result == AckResult.MALFORMED and "no age" in bad.detail
    assert len(stored(db, DEV)) == 2


def test_a_reading_stored_with_its_age_is_found_by_its_measured_time(db):
    # The panel, export and sync read by measured time: a reading received at T that waited 2 h
    # is in [T - 2 h, T - 2 h + 1), not at T.
    from edge.store.document import reading_json
    from edge.store.query import ReadingReader
    from tests.storekit import put_readings

    t = 1_700_010_000.0
    put_readings(db, DEV, [1], received_at=t, age_s=7200)
    reader = ReadingReader(db)
    try:
        assert [r.fcnt for r in reader.device_readings(DEV, start=t - 7200, end=t - 7199)] == [1]
        assert list(reader.device_readings(DEV, start=t - 7199, end=t + 1)) == []
        (r,) = reader.device_readings(DEV)
    finally:
        reader.close()
    doc = json.loads(reading_json(DEV, 1, r.received_ms, 1, [], r.raw, -80, 29, None, r.age_s))
    assert (doc["ts"], doc["received"]) == (t - 7200, t)
    fresh = json.loads(reading_json(DEV, 2, r.received_ms, 1, [], r.raw, -80, 29, None, None))
    assert fresh["ts"] == t and "received" not in fresh
