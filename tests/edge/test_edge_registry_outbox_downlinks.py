import json

import pytest

from edge import downlinks, outbox, registry
from edge.errors import ValidationError
from edge.radio import DownlinkResult
from edge.store import backlog, transaction
from tests.storekit import mark_synced, put_readings

DEV = "00000000000000a1"
NOW = 1_700_000_000.0


def test_add_list_show_remove(db):
    key = registry.add_device(db, DEV, name="tank", actor="cli", now=NOW)
    assert len(key) == 16
    dev = registry.get_device(db, DEV)
    assert (dev["name"], bytes(dev["key"]), dev["last_fcnt"], dev["codec"]) == ("tank", key, -1, "lpp")
    assert [d["id"] for d in registry.list_devices(db)] == [DEV]
    assert registry.remove_device(db, DEV, actor="cli", now=NOW) == 0
    assert registry.get_device(db, DEV) is None
    actions = [r["action"] for r in db.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["device.add", "device.remove"]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"device_id": "XYZ"}, "device_id"),
        ({"key": b"short"}, "key"),
        ({"role": "gateway"}, "role"),
        ({"codec": "nosuch"}, "codec"),
        ({"interval_s": 1}, "interval_s"),
    ],
)
def test_add_validates(db, kwargs, field):
    args = {"device_id": DEV, **kwargs}
    with pytest.raises(ValidationError) as err:
        registry.add_device(db, args.pop("device_id"), actor="cli", now=NOW, **args)
    assert err.value.field == field


def test_parse_key():
    assert registry.parse_key("00" * 16) == bytes(16)
    with pytest.raises(ValidationError, match="key: is 2 bytes"):
        registry.parse_key("abcd")
    with pytest.raises(ValidationError, match="not hex"):
        registry.parse_key("zz" * 16)


def test_rotate_and_readd_reset_the_replay_floor(db):
    registry.add_device(db, DEV, actor="cli", now=NOW)
    with transaction(db):
        db.execute("UPDATE devices SET last_fcnt = 500 WHERE id = ?", (DEV,))
    new = registry.rotate_key(db, DEV, actor="cli", now=NOW + 1)
    dev = registry.get_device(db, DEV)
    assert (dev["last_fcnt"], bytes(dev["key"]), dev["key_rotated_at"]) == (-1, new, NOW + 1)
    with transaction(db):
        db.execute("UPDATE devices SET last_fcnt = 9 WHERE id = ?", (DEV,))
    registry.add_device(db, DEV, actor="cli", now=NOW + 2)  # re-provisioning
    assert registry.get_device(db, DEV)["last_fcnt"] == -1
    with pytest.raises(ValidationError):
        registry.rotate_key(db, "ffffffffffffffff", actor="cli", now=NOW)


def test_quarantine_and_adopt(db):
    with transaction(db):
        registry.note_unknown(db, DEV, rssi=-90, bridge="b1", frame=b"\x40", now=NOW)
        registry.note_unknown(db, DEV, rssi=-85, bridge="b2", frame=b"\x41", now=NOW + 5)
    (q,) = registry.list_quarantine(db)
    assert (q["first_seen"], q["last_seen"], q["count"], q["last_rssi"], q["last_bridge"]) == (
        NOW,
        NOW + 5,
        2,
        -85,
        "b2",
    )
    with pytest.raises(ValidationError, match="not in quarantine"):
        registry.adopt(db, "1111111111111111", key=bytes(16), actor="op", now=NOW)
    registry.adopt(db, DEV, key=bytes(16), name="found", actor="op", now=NOW + 10)
    assert registry.list_quarantine(db) == []
    assert registry.get_device(db, DEV)["name"] == "found"


def test_remove_with_readings_needs_purge(db):
    registry.add_device(db, DEV, actor="cli", now=NOW)
    put_readings(db, DEV, [1, 2], received_at=NOW)
    mark_synced(db, DEV, 1)  # the cloud has fcnt 1, not fcnt 2
    with pytest.raises(ValidationError, match="2 stored readings"):
        registry.remove_device(db, DEV, actor="cli", now=NOW)
    # purge deletes what the cloud has; fcnt 2 stays until it reaches the cloud
    assert registry.remove_device(db, DEV, purge=True, actor="cli", now=NOW) == 1
    assert [r[0] & 0xFFFFFFFF for r in db.execute("SELECT id FROM readings")] == [2]
    assert registry.get_device(db, DEV) is None


def test_outbox_enqueue_is_idempotent_by_msg_id(db):
    with transaction(db):
        a = outbox.enqueue(db, msg_id="x:1", kind="event", body={"v": 1}, now=NOW)
        b = outbox.enqueue(db, msg_id="x:1", kind="event", body={"v": 2}, now=NOW)
    assert a == b
    assert json.loads(db.execute("SELECT body FROM outbox").fetchone()[0]) == {"v": 1}
    assert backlog.unsynced(db) == 1
    assert backlog.oldest_unsynced_at(db) == NOW
    with pytest.raises(ValidationError) as err:
        outbox.enqueue(db, msg_id="y", kind="nonsense", body={}, now=NOW)
    assert err.value.field == "kind"


@pytest.mark.parametrize(
    "command, args, field",
    [
        ("fly", {}, "command"),
        ("set_interval", {"seconds": 5}, "seconds"),
        ("set_interval", {"seconds": "abc"}, "seconds"),
        ("set_interval", {"seconds": 60, "extra": 1}, "extra"),
        ("set_output", {"output": 1, "value": 2}, "value"),
        ("set_output", {"output": 300, "value": 1}, "output"),
        ("config", {"values": {}}, "values"),
        ("config", {"values": {"a_long_key_name": "x" * 40}}, "values"),
        ("reboot", [], "args"),
    ],
)
def test_downlink_validation_names_the_field(db, command, args, field):
    registry.add_device(db, DEV, actor="cli", now=NOW)
    with pytest.raises(ValidationError) as err:
        downlinks.queue(db, DEV, command, args, source="cli", now=NOW)
    assert err.value.field == field


def test_downlink_unknown_device_and_source(db):
    with pytest.raises(ValidationError) as err:
        downlinks.queue(db, DEV, "reboot", {}, source="cli", now=NOW)
    assert err.value.field == "device_id"
    registry.add_device(db, DEV, actor="cli", now=NOW)
    with pytest.raises(ValidationError) as err:
        downlinks.queue(db, DEV, "reboot", {}, source="martians", now=NOW)
    assert err.value.field == "source"


def statuses(db):
    return [
        json.loads(r[0])["status"]
        for r in db.execute("SELECT body FROM outbox WHERE kind = 'downlink_status' ORDER BY id")
    ]


def test_downlink_lifecycle_queued_sent_acked(db):
    registry.add_device(db, DEV, actor="cli", now=NOW)
    dl = downlinks.queue(db, DEV, "set_interval", {"seconds": "600"}, source="panel", now=NOW)
    assert downlinks.get(db, dl)["args"] == {"seconds": 600}
    with transaction(db):
        pending = downlinks.take_for_uplink(db, DEV, 17, now=NOW + 1)
        assert pending.id == dl and pending.encode()[2] == 1
        assert downlinks.take_for_uplink(db, DEV, 18, now=NOW + 1) is None  # one at a time
        assert downlinks.sent_on(db, DEV, 17).id == dl
        assert downlinks.record_result(db, DEV, DownlinkResult(dl & 0xFFFF, 0, ""), now=NOW + 2) == dl
    row = downlinks.get(db, dl)
    assert (row["status"], row["sent_fcnt"], row["result"]) == ("acked", 17, "ok")
    assert statuses(db) == ["queued", "sent", "acked"]


def test_downlink_failed_and_expired(db):
    registry.add_device(db, DEV, actor="cli", now=NOW)
    a = downlinks.queue(db, DEV, "reboot", {}, source="cli", ttl_s=10, now=NOW)
    b = downlinks.queue(db, DEV, "request_status", {}, source="cli", ttl_s=10, now=NOW)
    c = downlinks.queue(db, DEV, "set_output", {"output": 1, "value": 1}, source="rule", ttl_s=100, now=NOW)
    with transaction(db):
        downlinks.take_for_uplink(db, DEV, 1, now=NOW)  # a: sent, never answered
        assert downlinks.expire(db, now=NOW + 11) == 2  # a failed, b expired
        downlinks.take_for_uplink(db, DEV, 2, now=NOW + 12)  # c
        downlinks.record_result(db, DEV, DownlinkResult(c, 2, "no such output"), now=NOW + 13)
    assert downlinks.get(db, a)["status"] == "failed"
    assert downlinks.get(db, a)["result"] == "no answer from the node"
    assert downlinks.get(db, b)["status"] == "expired"
    assert (downlinks.get(db, c)["status"], downlinks.get(db, c)["result"]) == (
        "failed",
        "value out of range: no such output",
    )
