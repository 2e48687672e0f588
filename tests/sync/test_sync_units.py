"""Pure parts of sync: backoff, budget, batching, encodings, config validation, status."""

from __future__ import annotations

import gzip
import json
import random

import pytest
from sync_helpers import DEVICES, buffer_readings, unsynced

from edge.codecs import CodecRunner
from edge.errors import ConfigError
from edge.store import cursor, numbers, readings, transaction
from edge.sync import budget, encoding, parse_sync_config, state, sync_status
from edge.sync.backoff import Backoff
from edge.sync.batching import Message, build_batches
from edge.sync.config import BudgetConfig
from edge.sync.https_sink import is_retryable
from edge.sync.pending import PendingScanner
from edge.sync.reading_scan import ReadingScanner
from tests.storekit import mark_synced, put_readings, unsynced_ids


def _msg(i, device="a" * 16, priority=1, body=None, created=100.0):
    body = body or json.dumps({"id": f"{device}:{i}", "device": device, "fcnt": i, "ts": created})
    return Message(i, f"{device}:{i}", "reading", priority, device, body, created)


# ---------------------------------------------------------------- backoff


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    b = Backoff(1.0, 60.0, random.Random(7))
    ceilings, delays = [], []
    for _ in range(10):
        delays.append(b.next_delay())
        ceilings.append(b.ceiling())
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert all(c / 10 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays[6:]}) == 4, "jitter: equal ceilings, different delays"
    b.reset()
    assert b.ceiling() == 0 and b.next_delay() <= 1.0
    assert (
        Backoff(1.0, 60.0, random.Random(7)).next_delay() == Backoff(1.0, 60.0, random.Random(7)).next_delay()
    )


def test_backoff_survives_a_week_of_failures():
    b = Backoff(0.5, 300.0, random.Random(1))
    for _ in range(100_000):
        delay = b.next_delay()
    assert 30 <= delay <= 300


# ---------------------------------------------------------------- budget


def test_budget_shares_by_priority():
    cfg = BudgetConfig(bytes_per_day=1000, shares=(1.0, 0.9, 0.5))
    assert budget.allows(cfg, 0, 500, 2) and not budget.allows(cfg, 1, 500, 2)
    assert budget.allows(cfg, 800, 100, 1) and not budget.allows(cfg, 801, 100, 1)
    assert budget.allows(cfg, 900, 100, 0) and not budget.allows(cfg, 901, 100, 0)
    assert budget.allows(BudgetConfig(bytes_per_day=0), 10**12, 10**9, 2), "0 means unlimited"


def test_utc_day_and_midnight():
    assert budget.utc_day(0) == "1970-01-01"
    assert budget.next_utc_midnight(86400 * 3 + 5) == 86400 * 4


# ---------------------------------------------------------------- batching


def test_batches_keep_device_order_and_respect_count_and_size_limits():
    msgs = [_msg(i, device=("a" if i % 3 else "b") * 16) for i in range(1, 31)]
    full, partial = build_batches(msgs, encoding.device_route, max_messages=4, max_bytes=10_000)
    for batch in full + partial:
        ids = batch.row_ids
        assert ids == sorted(ids) and len({m.device_id for m in batch.messages}) == 1
        assert len(ids) <= 4
    assert all(len(b.messages) == 4 for b in full)
    assert sorted(i for b in full + partial for i in b.row_ids) == list(range(1, 31))
    small, rest = build_batches(msgs, encoding.single_route, max_messages=100, max_bytes=300)
    assert all(b.size_estimate <= 300 for b in small + rest) and len(small) > 5


def test_batches_never_mix_priorities_and_keys_are_stable():
    msgs = [_msg(1), _msg(2, priority=0), _msg(3)]
    full, partial = build_batches(msgs, encoding.device_route, max_messages=10, max_bytes=10_000)
    assert full == [] and [(b.priority, b.row_ids) for b in partial] == [
        (1, [1, 3]),
        (0, [2]),
    ]
    _, again = build_batches(msgs, encoding.device_route, max_messages=10, max_bytes=10_000)
    assert [b.key for b in again] == [b.key for b in partial]
    assert partial[0].key != partial[1].key


def test_an_oversized_message_still_gets_a_batch():
    big = _msg(1, body=json.dumps({"blob": "x" * 5000}))
    full, partial = build_batches([big, _msg(2)], encoding.device_route, max_messages=10, max_bytes=1000)
    assert [b.row_ids for b in full + partial] == [[1], [2]]


# ---------------------------------------------------------------- encodings


def test_json_envelope_round_trips_with_and_without_gzip():
    _, [batch] = build_batches([_msg(1), _msg(2)], encoding.device_route, max_messages=10, max_bytes=10_000)
    raw = encoding.envelope_json(batch, "farm")
    doc = json.loads(raw)
    assert doc["site"] == "farm" and doc["device"] == "a" * 16 and doc["batch"] == batch.key
    assert [m["id"] for m in doc["messages"]] == ["a" * 16 + ":1", "a" * 16 + ":2"]
    assert doc["messages"][0]["body"]["fcnt"] == 1 and doc["messages"][0]["kind"] == "reading"
    packed = encoding.compress(raw, "gzip")
    assert encoding.decode_envelope(packed) == doc == encoding.decode_envelope(raw)
    assert packed == encoding.compress(raw, "gzip"), "resends are byte-identical"
    assert gzip.decompress(packed) == raw
    assert encoding.decode_envelope(encoding.envelope_cbor(batch, "farm")) == doc


def test_thingsboard_values_flatten_readings_and_alarms():
    body = {
        "id": "d:1",
        "device": "d",
        "fcnt": 1,
        "ts": 1.5,
        "port": 1,
        "rssi": -80,
        "snr": 7,
        "values": [
            {"channel": 1, "name": "temperature", "value": 21.5, "unit": "°C"},
            {"channel": 2, "name": "temperature", "value": 4.0, "unit": "°C"},
        ],
    }
    msg = Message(1, "d:1", "reading", 1, "d", json.dumps(body), 1.0)
    values = encoding.thingsboard_values(msg)
    assert values == {
        "msg_id": "d:1",
        "temperature": 21.5,
        "temperature_2": 4.0,
        "fcnt": 1,
        "rssi": -80,
        "snr": 7,
        "port": 1,
    }
    _, [batch] = build_batches([msg], encoding.thingsboard_route, max_messages=10, max_bytes=10_000)
    assert json.loads(encoding.thingsboard_telemetry(batch)) == {"d": [{"ts": 1500, "values": values}]}


def test_mqtt_publish_size_counts_the_header_exactly():
    assert encoding.mqtt_publish_size("a/b", 10, 1, False) == 1 + 1 + 2 + 3 + 2 + 10
    assert encoding.mqtt_publish_size("a/b", 200, 0, False) == 1 + 2 + 2 + 3 + 200
    assert encoding.mqtt_publish_size("t", 10, 1, True) == 1 + 1 + 2 + 1 + 2 + 1 + 10


def test_down_topics():
    assert encoding.device_of_down_topic("fp", "s", "fp/s/0123456789abcdef/down") == "0123456789abcdef"
    assert encoding.device_of_down_topic("fp", "s", "fp/s/x/y/down") is None
    assert encoding.device_of_down_topic("fp", "s", "fp/other/x/down") is None


def test_retryable_statuses():
    assert all(is_retryable(s) for s in (408, 429, 500, 502, 503, 504))
    assert not any(is_retryable(s) for s in (400, 401, 403, 404, 409, 413, 422))


# ---------------------------------------------------------------- config


def test_defaults_are_safe():
    cfg = parse_sync_config({}, site="farm")
    assert cfg.site == "farm" and cfg.sink == "mqtt" and cfg.client_id == "fieldpost-farm"
    assert cfg.mqtt.tls.enabled and cfg.mqtt.port == 8883 and cfg.mqtt.qos == 1
    assert cfg.compression == "gzip" and cfg.budget.bytes_per_day == 0


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"sink": "ftp"}, "sync.sink"),
        ({"mqtt": {"qos": 2}}, "sync.mqtt.qos"),
        ({"mqtt": {"port": "1883"}}, "sync.mqtt.port"),
        ({"mqtt": {"profile": "aws"}}, "sync.mqtt.profile"),
        (
            {"mqtt": {"tls": {"enabled": False}, "host": "10.0.0.5"}},
            "sync.mqtt.tls.enabled",
        ),
        ({"mqtt": {"password": "x"}}, "sync.mqtt.password"),
        ({"mqtt": {"topic_prefix": "a/#"}}, "sync.mqtt.topic_prefix"),
        ({"https": {"url": "http://cloud.example/ingest"}}, "sync.https.url"),
        ({"sink": "https"}, "sync.https.url"),
        ({"budget": {"shares": {"bulk": 1.5}}}, "sync.budget.shares.bulk"),
        ({"batch_max_messages": 0}, "sync.batch_max_messages"),
        ({"site": "a/b"}, "sync.site"),
        ({"colour": "blue"}, "sync.colour"),
        (
            {"mqtt": {"tls": {"ca_file": "/nonexistent/ca.pem"}}},
            "sync.mqtt.tls.ca_file",
        ),
    ],
)
def test_bad_config_names_the_key(section, key):
    with pytest.raises(ConfigError) as err:
        parse_sync_config(section)
    assert str(err.value).startswith(key + ":")


# ---------------------------------------------------------------- scanner and status


def test_scanner_skips_in_flight_rows_and_rescans_for_alarms(db):
    _, conn = db
    with transaction(conn):
        for i in range(50):
            conn.execute(
                "INSERT INTO outbox (msg_id, kind, priority, body, created_at) VALUES (?, 'event', 1, '{}', ?)",
                (f"e{i}", i),
            )
    scanner = PendingScanner()
    rows = scanner.next_rows(conn, 20)
    assert [r.row_id for r in rows] == list(range(1, 21))
    scanner.handed_out(rows, {r.row_id for r in rows[:10]})
    assert scanner.cursor == (1, 10)
    assert [r.row_id for r in scanner.next_rows(conn, 5)] == [11, 12, 13, 14, 15]
    with transaction(conn):
        conn.execute(
            "INSERT INTO outbox (msg_id, kind, priority, body, created_at) VALUES ('al', 'alarm', 0, '{}', 1)"
        )
    assert [r.msg_id for r in scanner.next_rows(conn, 2)] == ["al", rows[10].msg_id]
    scanner.reset()
    assert scanner.next_rows(conn, 1)[0].msg_id == "al"


def test_reading_scanner_reads_past_the_cursor_in_fcnt_order_and_moves_it_over_acked_prefixes(db):
    _, conn = db
    devices = DEVICES[:2]
    ids = buffer_readings(conn, 20, devices=devices, created_at=1000.0)  # fcnt 0..9 of each
    codecs = CodecRunner()
    scanner = ReadingScanner(codecs)
    try:
        first = scanner.next_messages(conn, 100, per_device=4)
        assert [m.msg_id for m in first] == [f"{devices[0]}:{f}" for f in range(4)] + [
            f"{devices[1]}:{f}" for f in range(4)
        ]
        body = json.loads(first[0].body)
        assert body["values"][0] == {"channel": 1, "name": "temperature", "value": 20.0, "unit": "°C"}
        assert (first[0].kind, first[0].priority, first[0].source) == ("reading", 1, "reading")
        # device 0's first 4 go out; device 1's only up to fcnt 1 (its fcnt 2 stays): the rest of
        # device 1 is held back behind it, so a device's readings always leave in order
        sent = {m.row_id for m in first[:4]} | {first[4].row_id, first[5].row_id}
        scanner.handed_out(first, sent)
        again = scanner.next_messages(conn, 100, per_device=4)
        assert [m.msg_id for m in again][:2] == [f"{devices[0]}:4", f"{devices[0]}:5"]
        assert f"{devices[1]}:2" in [m.msg_id for m in again]
        # acks out of order: the cursor only passes the acknowledged prefix
        assert scanner.acked([first[2].row_id, first[3].row_id]) == []
        moves = scanner.acked([first[0].row_id, first[1].row_id, first[5].row_id])
        n0 = first[0].row_id >> 32
        assert [(m.device, m.new) for m in moves] == [(n0, first[3].row_id)]
        with transaction(conn):
            assert scanner.settle(conn, moves) == 4
        assert unsynced(conn) == len(ids) - 4
        # a dropped connection: everything past the committed cursor is read again
        scanner.reset()
        assert scanner.next_messages(conn, 100, per_device=4)[0].msg_id == f"{devices[0]}:4"
    finally:
        codecs.close()


def test_readings_the_cloud_never_gets_are_passed_over_by_the_cursor(db):
    _, conn = db
    dev = DEVICES[0]
    buffer_readings(conn, 2, devices=[dev])  # fcnt 0, 1
    put_readings(conn, dev, [2], port=2, raw=b"\x00\x07\x00")  # a downlink result
    buffer_readings(conn, 1, devices=[dev], start_fcnt=3)
    codecs = CodecRunner()
    scanner = ReadingScanner(codecs)
    try:
        out = scanner.next_messages(conn, 100, per_device=10)
        assert [(m.msg_id.split(":")[1], m.kind) for m in out] == [
            ("0", "reading"),
            ("1", "reading"),
            ("2", ""),
            ("3", "reading"),
        ]
        scanner.handed_out(out, {m.row_id for m in out if m.kind})
        moves = scanner.acked([m.row_id for m in out if m.kind])
        assert [(m.device, m.new) for m in moves] == [(out[0].row_id >> 32, out[3].row_id)]
    finally:
        codecs.close()


def test_a_reading_stored_below_what_is_in_flight_is_not_passed_over(db):
    # A counter that started over stores fcnt 1 while fcnt 5..7 of the same device are on their way:
    # their ack must not move the cursor past fcnt 1, which the sink never had.
    _, conn = db
    dev = DEVICES[0]
    put_readings(conn, dev, [5, 6, 7])
    codecs = CodecRunner()
    scanner = ReadingScanner(codecs)
    try:
        out = scanner.next_messages(conn, 100, per_device=10)
        scanner.handed_out(out, {m.row_id for m in out})
        put_readings(conn, dev, [1])  # stored by the writer meanwhile (its cursor row did not exist)
        moves = scanner.acked([m.row_id for m in out])
        with transaction(conn):
            scanner.settle(conn, moves)
        assert [rid & 0xFFFFFFFF for rid in unsynced_ids(conn)] == [1, 5, 6, 7]
        again = scanner.next_messages(conn, 100, per_device=10)
        assert [m.msg_id.split(":")[1] for m in again] == ["1", "5", "6", "7"]
    finally:
        codecs.close()


def test_a_cursor_the_writer_moved_back_is_not_moved_on_from_its_old_place(db):
    _, conn = db
    dev = DEVICES[0]
    put_readings(conn, dev, [5, 6, 7, 8])
    mark_synced(conn, dev, 6)
    codecs = CodecRunner()
    scanner = ReadingScanner(codecs)
    try:
        out = scanner.next_messages(conn, 100, per_device=10)
        assert [m.msg_id.split(":")[1] for m in out] == ["7", "8"]
        scanner.handed_out(out, {m.row_id for m in out})
        with transaction(conn):  # the writer stores fcnt 2 and moves the cursor back below it
            n = numbers.number_of(conn, dev)
            readings.insert_many(conn, [(readings.reading_id(n, 2), 1, 1, -80, 0, None, None, b"\x01")])
            cursor.rewind(conn, {n: readings.reading_id(n, 2)})
        moves = scanner.acked([m.row_id for m in out])
        with transaction(conn):
            scanner.settle(conn, moves)
        assert [rid & 0xFFFFFFFF for rid in unsynced_ids(conn)] == [2, 5, 6, 7, 8]
        assert scanner.next_messages(conn, 100, per_device=10)[0].msg_id.endswith(":2")
    finally:
        codecs.close()


def test_sync_status_reports_backlog_errors_and_bytes(db):
    _, conn = db
    buffer_readings(conn, 30, created_at=1000.0)  # round-robin over 8 devices, 1 ms apart
    now = 1_700_000_000.0
    # the first 10 reached the cloud: fcnt 0 of every device, and fcnt 1 of the first two
    for i, device in enumerate(DEVICES):
        mark_synced(conn, device, 1 if i < 2 else 0)
    with transaction(conn):
        state.record_success(conn, "mqtt", now - 5)
        state.record_error(conn, "mqtt", "mqtt connection lost: boom", now - 1)
        state.add_bytes(conn, "mqtt", 1200, now)
        state.add_bytes(conn, "mqtt", 34, now)
    s = sync_status(conn, now)
    assert s["backlog"] == 20 and s["backlog_by_priority"] == {
        "alarms": 0,
        "readings": 20,
        "bulk": 0,
    }
    assert s["backlog_age_s"] == pytest.approx(now - (1000.0 + 0.010), abs=1e-6)
    assert s["last_error"] == "mqtt connection lost: boom" and not s["healthy"]
    assert s["bytes_today"] == 1234 and s["sinks"]["mqtt"]["bytes_today"] == 1234
    assert sync_status(conn, now + 86400)["bytes_today"] == 0, "the count is per UTC day"
    with transaction(conn):
        state.add_bytes(conn, "mqtt", 10, now + 86400)
    assert sync_status(conn, now + 86400)["bytes_today"] == 10


def test_retention_config_is_checked_key_by_key():
    from edge.store.retention import RetentionPolicy, parse_retention_config, policy_with_settings

    assert parse_retention_config(None) == RetentionPolicy()
    policy = parse_retention_config({"max_age_days": 2, "max_db_bytes": 1 << 20, "low_water": 0.5})
    assert (policy.max_age_s, policy.max_db_bytes, policy.low_water) == (2 * 86400.0, 1 << 20, 0.5)
    for section, error in (
        ({"max_age_day": 2}, r"retention\.max_age_day: unknown key"),
        ({"chunk_rows": 2.5}, r"retention\.chunk_rows: 2\.5 is float, expected int"),
        ({"low_water": "high"}, r"retention\.low_water: 'high' is str, expected float"),
        ({"max_db_bytes": 1}, r"retention\.max_db_bytes: 1 is outside"),
        ({"interval_s": True}, r"retention\.interval_s: True is bool, expected float"),
    ):
        with pytest.raises(ConfigError, match=error):
            parse_retention_config(section)
    # The panel's null: no size limit; a null age is refused and the config file's age stays.
    limited = parse_retention_config({"max_db_bytes": 1 << 20})
    panel = policy_with_settings(limited, {"retention.max_db_bytes": None, "retention.max_age_days": None})
    assert panel.max_db_bytes is None and panel.max_age_s == limited.max_age_s
