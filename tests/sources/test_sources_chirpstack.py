"""ChirpStack v4's MQTT integration as an ingest source, against a real Mosquitto."""

from __future__ import annotations

import json
import random
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sources_helpers import EdgeProcess, ack, encode, join, topic, txack, uplink, write_config

from edge import downlinks
from edge.ingest import Ingestor
from edge.radio import encode_command
from edge.sources import chirpstack_events as events
from edge.sources.chirpstack import ChirpstackSource
from edge.sources.config import ChirpstackConfig
from edge.sources.counters import Counters
from edge.sources.errors import SourceInputError
from edge.store import connect, migrate
from tests.conftest import wait_until

APP = "farm"
CLIENT_ID = "fieldpost-chirpstack-test"


class FakeChirpstack:
    """ChirpStack's side of the integration: publishes events (QoS 1), records command/down."""

    def __init__(self, port: int):
        self.commands: list[tuple[str, bytes]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chirpstack", clean_session=True)
        self.client.max_inflight_messages_set(200)
        self.client.on_message = lambda _c, _u, msg: self.commands.append((msg.topic, msg.payload))
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.subscribe("application/+/device/+/command/down", qos=1)
        self.client.loop_start()

    def publish(self, event: str, msg, encoding: str = "json", *, wait: bool = True):
        info = self.client.publish(
            topic(msg.device_info.application_id, msg.device_info.dev_eui, event),
            encode(msg, encoding),
            qos=1,
        )
        if wait:
            info.wait_for_publish(10)
        return info

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _source(broker, store, **overrides) -> tuple[ChirpstackSource, Counters]:
    path, _conn, ingest = store
    counters = Counters()
    cfg = ChirpstackConfig(
        enabled=True, port=broker.port, client_id=CLIENT_ID, adopt_applications=(APP,), **overrides
    )
    source = ChirpstackSource(cfg, ingest, db_path=str(path), counters=counters).start()
    wait_until(source.connected.is_set, 10, what="the source to connect")
    return source, counters


def _readings(path) -> list[tuple]:
    conn = connect(path)
    try:
        return conn.execute(
            "SELECT r.id, r.raw, r.rssi, r.snr_q, u.fcnt, u.fport, u.dedup_id, u.object"
            " FROM readings r JOIN source_uplinks u ON u.id = r.id ORDER BY r.id"
        ).fetchall()
    finally:
        conn.close()


DEVICES = [f"70b3d57ed00{i:05x}" for i in range(20)]
PER_SESSION = 250  # each device: fCnt 0..249, a join (the counter starts over), fCnt 0..249 again


def _plan() -> list[tuple[str, object, str]]:
    """(event, message, encoding) in publishing order: 10,000 uplinks and a join per device,
    JSON and protobuf alternating, the devices interleaved as a network server would."""
    rng = random.Random(16)
    out = []
    for session in range(2):
        if session:
            out += [
                ("join", join(dev, APP), "json" if i % 2 else "protobuf") for i, dev in enumerate(DEVICES)
            ]
        for fcnt in range(PER_SESSION):
            for i, dev in enumerate(DEVICES):
                data = bytes([session, fcnt & 0xFF, i]) + rng.randbytes(8)
                msg = uplink(dev, APP, fcnt, data, obj={"fcnt": fcnt, "session": session}, name=f"meter {i}")
                out.append(("up", msg, "json" if (fcnt + i) % 2 else "protobuf"))
    return out


def test_ten_thousand_uplinks_with_the_edge_killed_twenty_times(tmp_path, broker):
    db = tmp_path / "edge.db"
    conn = connect(db)
    migrate(conn)
    conn.close()
    config = write_config(
        tmp_path / "edge.toml",
        db,
        {
            "chirpstack": {
                "enabled": True,
                "port": broker.port,
                "client_id": CLIENT_ID,
                "adopt_applications": [APP],
            }
        },
    )
    edge = EdgeProcess(config, tmp_path / "edge.log").start()
    cs = FakeChirpstack(broker.port)
    # the first start makes the persistent session: from then on the broker keeps what is published
    # for it. A probe from a stranger's application, until it is in quarantine: the edge subscribed.
    probe = uplink("70b3d57ed0eeeeee", "probe", 0, b"?")

    def subscribed() -> bool:
        cs.publish("up", probe)
        c = connect(db)
        try:
            return (
                c.execute("SELECT 1 FROM quarantine WHERE device_id = '70b3d57ed0eeeeee'").fetchone()
                is not None
            )
        finally:
            c.close()

    wait_until(subscribed, 30, interval=0.3, what="the edge to subscribe")
    plan = _plan()
    published = threading.Event()
    kills = 0
    try:

        def publish_all():
            infos = [cs.publish(event, msg, enc, wait=False) for event, msg, enc in plan]
            for info in infos:
                info.wait_for_publish(60)
            published.set()

        publisher = threading.Thread(target=publish_all, daemon=True)
        publisher.start()
        rng = random.Random(20)
        while kills < 20:
            time.sleep(rng.uniform(0.4, 1.2))
            edge.kill()
            kills += 1
            edge.start()
        publisher.join(120)
        assert published.is_set(), "ChirpStack could not publish everything"
        want = 2 * PER_SESSION * len(DEVICES)
        wait_until(lambda: len(_readings(db)) >= want, 120, interval=0.5, what=f"{want} readings stored")
        time.sleep(1.0)  # anything still coming would be a duplicate
    finally:
        edge.stop()
        cs.stop()
    rows = _readings(db)
    sent = {msg.deduplication_id: (msg, enc) for event, msg, enc in plan if event == "up"}
    assert len(rows) == len(sent) == 10_000, f"{len(rows)} stored of {len(sent)}"
    assert {r[6] for r in rows} == set(sent)  # every uplink stored, none twice (dedup_id is UNIQUE)
    conn = connect(db)
    try:
        for _rid, raw, rssi, snr_q, fcnt, fport, dedup, obj in rows:
            msg, _enc = sent[dedup]
            assert (raw, fcnt, fport) == (msg.data, msg.f_cnt, msg.f_port)
            assert (rssi, snr_q) == (-70, 22)  # the best gateway's (5.5 dB as quarter dB)
            assert json.loads(obj) == {"fcnt": msg.f_cnt, "session": raw[0]}
        # per device: the second session stored past the first, so the two fCnt 0 never collided
        for dev in DEVICES:
            base, name, session = conn.execute(
                "SELECT fcnt_base, name, session FROM source_devices WHERE device_id = ?", (dev,)
            ).fetchone()
            assert base == PER_SESSION and session and name.startswith("meter")
            (count,) = conn.execute(
                "SELECT count(*) FROM reading_list WHERE device_id = ? AND fcnt BETWEEN 0 AND ?",
                (dev, 2 * PER_SESSION - 1),
            ).fetchone()
            assert count == 2 * PER_SESSION
    finally:
        conn.close()
    assert kills == 20


def test_a_downlink_round_trip_updates_its_status(broker, store):
    path, _conn, ingest = store
    source, counters = _source(broker, store)
    cs = FakeChirpstack(broker.port)
    dev = DEVICES[0]
    try:
        cs.publish("up", uplink(dev, APP, 0, b"\x01", name="pump"))
        wait_until(lambda: counters.get("chirpstack", "stored") == 1, 10, what="the uplink stored")
        dl_id = ingest.run(
            lambda c: downlinks.queue(c, dev, "set_interval", {"seconds": 120}, source="cli", now=time.time())
        )
        assert source.publish_downlinks() == 1
        wait_until(lambda: cs.commands, 10, what="command/down at ChirpStack")
        wait_until(
            lambda: counters.get("chirpstack", "downlink_published") == 1, 10, what="the publish recorded"
        )
        assert source.publish_downlinks() == 0  # handed over once
        ((down_topic, body),) = cs.commands
        assert down_topic == f"application/{APP}/device/{dev}/command/down"
        cmd = json.loads(body)
        assert cmd["devEui"] == dev and cmd["fPort"] == 10 and cmd["confirmed"] is True
        import base64

        assert base64.b64decode(cmd["data"]) == encode_command(dl_id, "set_interval", {"seconds": 120})
        status = lambda: ingest.run(lambda c: downlinks.get(c, dl_id)["status"])  # noqa: E731
        assert status() == "queued"
        cs.publish("txack", txack(dev, APP, cmd["id"]), "protobuf")
        wait_until(lambda: status() == "sent", 10, what="txack -> sent")
        cs.publish("ack", ack(dev, APP, cmd["id"], acknowledged=True))
        wait_until(lambda: status() == "acked", 10, what="ack -> acked")
        cs.publish("txack", txack(dev, APP, cmd["id"]))  # late and again: changes nothing
        wait_until(lambda: counters.get("chirpstack", "duplicate") == 1, 10, what="the repeat counted")
        assert status() == "acked"
        kinds = ingest.run(
            lambda c: [
                json.loads(b)["status"]
                for (b,) in c.execute("SELECT body FROM outbox WHERE kind = 'downlink_status' ORDER BY id")
            ]
        )
        assert kinds == ["queued", "sent", "acked"]
    finally:
        cs.stop()
        source.stop()


BAD = [
    ("up", b'{"deduplicationId": "x", "deviceInfo": {"devEui": "70b3d57ed0000001"}, "fCnt": "ten"}', "fCnt"),
    ("up", b'{"deduplicationId": "x", "deviceInfo": {"devEui": "70b3d57ed0000001"', "payload"),
    ("up", b"\x0a\xff\xff\xff", "payload"),  # protobuf cut short
    ("up", b'{"deduplicationId": "x", "fCnt": 1, "fPort": 1}', "deviceInfo"),
    (
        "up",
        b'{"deduplicationId": "x", "deviceInfo": {"devEui": "zz"}, "fCnt": 1, "fPort": 1}',
        "deviceInfo.devEui",
    ),
    ("up", b'{"deviceInfo": {"devEui": "70b3d57ed0000001"}, "fCnt": 1, "fPort": 1}', "deduplicationId"),
    (
        "up",
        b'{"deduplicationId": "x", "deviceInfo": {"devEui": "70b3d57ed0000002"}, "fCnt": 1, "fPort": 1}',
        "deviceInfo.devEui",
    ),  # not the topic's device
    ("ack", b'{"deviceInfo": {"devEui": "70b3d57ed0000001"}, "acknowledged": true}', "queueItemId"),
]


@pytest.mark.parametrize(("event", "payload", "field"), BAD)
def test_a_malformed_event_names_its_field(event, payload, field):
    with pytest.raises(SourceInputError) as info:
        events.parse_event(f"application/{APP}/device/70b3d57ed0000001/event/{event}", payload)
    assert info.value.field == field, info.value


def test_bad_events_are_refused_counted_and_lose_nothing(broker, store):
    path, _conn, _ingest = store
    source, counters = _source(broker, store)
    cs = FakeChirpstack(broker.port)
    dev = DEVICES[1]
    try:
        hooked = []
        store[2].add_hook(hooked.extend)  # what the rules engine and the panel's live view get
        first = uplink(dev, APP, 5, b"kept", name="kept")
        cs.publish("up", first)
        wait_until(lambda: counters.get("chirpstack", "stored") == 1, 10, what="the first uplink")
        wait_until(lambda: hooked, 10, what="the post-commit hooks")
        assert [(r.msg_id, r.raw, r.rssi, r.snr, r.codec) for r in hooked] == [
            (f"{dev}:5", b"kept", -70, 5.5, "lpp")
        ]
        for event, payload, _field in BAD:
            cs.client.publish(
                f"application/{APP}/device/70b3d57ed0000001/event/{event}", payload, qos=1
            ).wait_for_publish(5)
        # a device of an application that is not adopted: quarantined with ChirpStack's name and tags
        stranger = uplink(
            "70b3d57ed0ffffff", "neighbours", 3, b"?", name="their meter", tags={"owner": "next door"}
        )
        cs.publish("up", stranger, "protobuf")
        wait_until(
            lambda: counters.get("chirpstack", "malformed") == len(BAD), 10, what="every bad event counted"
        )
        wait_until(lambda: counters.get("chirpstack", "unknown_device") == 1, 10, what="the stranger counted")
        rows = _readings(path)
        assert [r[1] for r in rows] == [b"kept"]
        conn = connect(path)
        try:
            name, tags, app = conn.execute(
                "SELECT name, tags, application FROM source_devices WHERE device_id = '70b3d57ed0ffffff'"
            ).fetchone()
            assert (name, json.loads(tags), app) == ("their meter", {"owner": "next door"}, "neighbours")
            assert (
                conn.execute("SELECT count FROM quarantine WHERE device_id = '70b3d57ed0ffffff'").fetchone()[
                    0
                ]
                == 1
            )
            assert conn.execute("SELECT 1 FROM devices WHERE id = '70b3d57ed0ffffff'").fetchone() is None
            assert tuple(conn.execute("SELECT name, codec FROM devices WHERE id = ?", (dev,)).fetchone()) == (
                "kept",
                "lpp",
            )
        finally:
            conn.close()
        # the same uplink delivered again (its PUBACK lost): stored once
        cs.publish("up", first)
        wait_until(lambda: counters.get("chirpstack", "duplicate") == 1, 10, what="the repeat counted")
        assert [r[1] for r in _readings(path)] == [b"kept"]
    finally:
        cs.stop()
        source.stop()


def test_a_device_whose_profile_decodes_in_chirpstack_gets_its_object_as_values(broker, store):
    from edge.codecs import CodecRunner
    from edge.store.decode import decode_payload

    path, _conn, _ingest = store
    source, counters = _source(broker, store, codec="chirpstack")
    cs = FakeChirpstack(broker.port)
    dev = DEVICES[2]
    try:
        cs.publish("up", uplink(dev, APP, 1, b"\x01\x02", obj={"temperature": 21.5, "valve": {"open": True}}))
        cs.publish("up", uplink(dev, APP, 2, b"\x03"), "protobuf")  # its profile's codec gave no object
        wait_until(lambda: counters.get("chirpstack", "stored") == 2, 10, what="both uplinks")
    finally:
        cs.stop()
        source.stop()
    conn = connect(path)
    try:
        rows = conn.execute(
            "SELECT r.raw, u.data, d.codec FROM readings r JOIN source_uplinks u ON u.id = r.id"
            " JOIN reading_list l ON l.id = r.id JOIN devices d ON d.id = l.device_id ORDER BY r.id"
        ).fetchall()
    finally:
        conn.close()
    (raw1, data1, codec), (raw2, data2, _) = rows
    assert codec == "chirpstack" and data1 == b"\x01\x02" and (raw2, data2) == (b"\x03", None)
    runner = CodecRunner()
    values, error = decode_payload(runner, codec, 1, raw1)
    assert error is None and [(v["name"], v["value"]) for v in values] == [
        ("temperature", 21.5),
        ("valve.open", 1),
    ]
    values, error = decode_payload(runner, codec, 1, raw2)
    assert values is None and error.startswith("chirpstack: payload is not JSON")


def test_a_broker_on_another_machine_over_verified_tls(tmp_path):
    import shutil

    import trustme

    from tests.sync.sync_helpers import MOSQUITTO, Mosquitto

    if not shutil.which(MOSQUITTO):
        pytest.skip("mosquitto is not installed")
    ca, stranger = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "stranger", "cert", "key")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    stranger.cert_pem.write_to_path(str(files["stranger"]))
    server.cert_chain_pems[0].write_to_path(str(files["cert"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    broker = Mosquitto(
        tmp_path / "tls-broker",
        tls={"cafile": str(files["ca"]), "certfile": str(files["cert"]), "keyfile": str(files["key"])},
    ).start()
    path = tmp_path / "edge.db"
    conn = connect(path)
    migrate(conn)
    ingest = Ingestor(conn)
    ingest.start()
    sources = []
    try:
        counters = Counters()
        for ca_file in (files["stranger"], files["ca"]):
            cfg = ChirpstackConfig(
                enabled=True,
                port=broker.port,
                client_id=f"tls-{len(sources)}",
                tls=True,
                ca_file=str(ca_file),
                adopt_applications=(APP,),
            )
            sources.append(ChirpstackSource(cfg, ingest, db_path=str(path), counters=counters).start())
        wait_until(sources[1].connected.is_set, 10, what="the source trusting the broker's CA to connect")
        time.sleep(0.5)
        assert not sources[0].connected.is_set()  # a certificate it cannot verify: no connection at all
        cs = FakeChirpstack(broker.plain_port)
        try:
            cs.publish("up", uplink(DEVICES[3], APP, 1, b"tls"))
            wait_until(lambda: counters.get("chirpstack", "stored") == 1, 10, what="the uplink over TLS")
        finally:
            cs.stop()
    finally:
        for s in sources:
            s.stop()
        ingest.stop()
        conn.close()
        broker.stop()


def test_a_message_held_while_the_edge_is_busy_comes_again_and_is_stored(broker, store):
    path, _conn, ingest = store
    counters = Counters()
    why = ["disk full"]
    cfg = ChirpstackConfig(enabled=True, port=broker.port, client_id=CLIENT_ID, adopt_applications=(APP,))
    source = ChirpstackSource(
        cfg, ingest, db_path=str(path), counters=counters, busy=lambda: why[0] if why else None
    ).start()
    wait_until(source.connected.is_set, 10, what="the source to connect")
    cs = FakeChirpstack(broker.port)
    try:
        cs.publish("up", uplink(DEVICES[4], APP, 1, b"held"))
        wait_until(lambda: counters.get("chirpstack", "busy") == 1, 10, what="the message held")
        assert _readings(path) == []
        source.check_stuck()  # still busy: nothing happens
        time.sleep(0.3)
        assert _readings(path) == []
        why.clear()  # room again; the broker still has the message: it was never acknowledged
        source.check_stuck()  # the daemon's timer: reconnect, so the broker sends it again
        wait_until(
            lambda: counters.get("chirpstack", "stored") == 1, 15, what="the message sent again and stored"
        )
        assert [r[1] for r in _readings(path)] == [b"held"]
    finally:
        cs.stop()
        source.stop()


def test_what_retention_deletes_goes_from_the_uplink_records_too(broker, store):
    from edge.store import readings

    path, _conn, ingest = store
    source, counters = _source(broker, store)
    cs = FakeChirpstack(broker.port)
    try:
        for fcnt in range(4):
            cs.publish("up", uplink(DEVICES[5], APP, fcnt, bytes([fcnt])))
        cs.publish("up", uplink(DEVICES[6], APP, 0, b"other"))
        wait_until(lambda: counters.get("chirpstack", "stored") == 5, 10, what="five uplinks")
        ids = [r[0] for r in _readings(path)]
        # retention removes a device's oldest readings: the first two of DEVICES[5]
        ingest.run(lambda c: readings.delete_between(c, ids[0], ids[1]))
        source.prune()
        assert [r[0] for r in _readings(path)] == ids[2:]
        left = ingest.run(lambda c: [r[0] for r in c.execute("SELECT id FROM source_uplinks ORDER BY id")])
        assert left == ids[2:]
    finally:
        cs.stop()
        source.stop()


def test_with_chirpstacks_protobuf_marshaler_commands_go_out_in_protobuf(broker, store):
    from chirpstack_api import integration

    _path, _conn, ingest = store
    source, counters = _source(broker, store, json=False)
    cs = FakeChirpstack(broker.port)
    dev = DEVICES[7]
    try:
        cs.publish("up", uplink(dev, APP, 0, b"\x01"), "protobuf")
        wait_until(lambda: counters.get("chirpstack", "stored") == 1, 10, what="the uplink stored")
        dl_id = ingest.run(lambda c: downlinks.queue(c, dev, "reboot", {}, source="cli", now=time.time()))
        assert source.publish_downlinks() == 1
        wait_until(lambda: cs.commands, 10, what="command/down at ChirpStack")
        cmd = integration.DownlinkCommand.FromString(cs.commands[0][1])
        assert (cmd.dev_eui, cmd.f_port, cmd.confirmed) == (dev, 10, True)
        assert cmd.data == encode_command(dl_id, "reboot", {})
    finally:
        cs.stop()
        source.stop()
