"""What the pages show and what their forms do, through the Flask test client on a real database."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time

import pytest

from edge.store import backlog, connect
from tests.storekit import mark_synced
from tests.webui.helpers import Module, add_device, csrf_token, raise_alarm

DEV = "0011223344556677"
OTHER = "8899aabbccddeeff"


def send_downlink(client, token: str, **fields):
    """Post the device page's downlink form, as the browser does."""
    return client.post(f"/devices/{DEV}/downlinks", data={"csrf_token": token, **fields})


@pytest.fixture
def site(app, db_path):
    """Two modules: one heard just now through the real ingest path, one silent for a day."""
    add_device(db_path, DEV, name="cold room", interval_s=60)
    add_device(db_path, OTHER, name="tank", interval_s=60)
    module = Module(db_path, DEV)
    t = time.time()
    for i in range(5):
        module.reading(temperature=4.0 + i, battery=3.7, rssi=-71, snr=9.5, now=t - 300 + i * 60)
    silent = Module(db_path, OTHER)
    silent.reading(temperature=12.0, now=t - 86400)
    return module


def readings_digest(db_path) -> str:
    conn = connect(db_path)
    rows = conn.execute("SELECT * FROM readings ORDER BY id").fetchall()
    return hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()


def test_overview_shows_modules_values_alarms_sync_and_disk(site, admin, db_path):
    raise_alarm(db_path, device_id=DEV, message="too warm")
    page = admin.get("/").get_data(as_text=True)
    assert "cold room" in page and "tank" in page
    assert page.count("badge-ok") >= 1 and "offline" in page  # one online, one silent
    assert '<span id="online-count">1</span>' in page
    assert "3.7 V" in page and "-71 dBm" in page and "9.5 dB" in page
    assert "8 °C" in page and "°C" in page  # the newest temperature with its unit
    assert "too warm" in page and 'id="open-alarm-count">1<' in page
    assert 'id="sync-backlog">7<' in page  # 6 readings past the sync cursor and the alarm in the outbox
    assert "free" in page and "KiB" in page or "MiB" in page


def test_device_page_values_frames_airtime_downlinks(site, admin):
    page = admin.get(f"/devices/{DEV}").get_data(as_text=True)
    assert "temperature" in page and "humidity" in page and "battery" in page
    assert "°C" in page and "%" in page
    assert 'id="raw-frames"' in page and "0167" in page  # LPP temperature on channel 1, as hex
    assert 'id="duty-cycle"' in page and "SF12" in page
    assert "/static/vendor/uplot/uPlot.iife.min.js" in page
    assert "Queue downlink" in page and "Delete readings" in page


def test_series_for_charts(site, admin):
    data = admin.get(f"/devices/{DEV}/series?range=24h&points=2000").get_json()
    names = {(s["name"], s["unit"], s["kind"]) for s in data["series"]}
    assert ("temperature", "°C", "measure") in names and ("battery", "V", "measure") in names
    temps = next(s for s in data["series"] if s["name"] == "temperature")
    assert len(temps["avg"]) == len(data["times"]) == 5  # 5 readings, 600 buckets: each its own point
    assert temps["avg"] == temps["min"] == temps["max"] == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert data["downsampled"] is False and data["timezone"] == "UTC"
    assert data["end"] - data["start"] == pytest.approx(86400, abs=0.01)
    for name in ("1h", "7d", "30d"):
        assert admin.get(f"/devices/{DEV}/series?range={name}").status_code == 200
    bad = admin.get(f"/devices/{DEV}/series?range=1y")
    assert bad.status_code == 400 and bad.get_json()["error"] == "range"
    assert (
        admin.get(f"/devices/{DEV}/series?start=2026-01-02T00:00&end=2026-01-01T00:00").get_json()["error"]
        == "end"
    )
    assert admin.get(f"/devices/{DEV}/series?start=yesterday&end=1").get_json()["error"] == "start"
    assert admin.get(f"/devices/{DEV}/series?start=1&end=nan").get_json()["error"] == "end"


def test_script_in_a_device_name_is_shown_escaped(app, admin, db_path):
    add_device(db_path, DEV, name="<script>alert(1)</script>")
    Module(db_path, DEV).reading()
    raise_alarm(db_path, device_id=DEV, message="<img src=x onerror=alert(2)>")
    for url in ("/", f"/devices/{DEV}", "/alarms", "/export", "/fragments/overview"):
        page = admin.get(url).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in page, url
        assert "<img src=x" not in page, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in admin.get("/").get_data(as_text=True)


@pytest.mark.parametrize(
    "evil",
    [
        "' OR 1=1 --",
        '"; DROP TABLE readings; --',
        "%' UNION SELECT * FROM users --",
        "0011223344556677' OR '1'='1",
    ],
)
def test_sql_injection_strings_in_filters_return_normal_results(site, admin, db_path, evil):
    raise_alarm(db_path, device_id=DEV)
    before = readings_digest(db_path)
    alarms = admin.get("/alarms", query_string={"device": evil, "state": evil})
    assert alarms.status_code == 200 and "No alarm matches." in alarms.get_data(as_text=True)
    export = admin.get("/export/data", query_string={"device": evil, "start": evil, "end": "1"})
    assert export.status_code == 400 and "Choose a registered device" in export.get_data(as_text=True)
    assert admin.get(f"/devices/{evil}").status_code == 404
    assert admin.get("/audit", query_string={"limit": evil}).status_code == 200
    assert readings_digest(db_path) == before
    assert connect(db_path).execute("SELECT count(*) FROM users").fetchone()[0] == 3


def test_downlink_validation_messages_next_to_fields(site, operator, db_path):
    token = csrf_token(operator, f"/devices/{DEV}")
    too_short = send_downlink(operator, token, command="set_interval", seconds="5")
    assert too_short.status_code == 400
    page = too_short.get_data(as_text=True)
    assert 'id="seconds-error"' in page and "outside 10 .. 86400" in page
    assert 'aria-invalid="true"' in page
    missing = send_downlink(operator, token, command="set_output")
    assert 'id="output-error"' in missing.get_data(as_text=True)
    bogus = send_downlink(operator, token, command="format_disk")
    assert bogus.status_code == 400 and 'id="command-error"' in bogus.get_data(as_text=True)
    assert connect(db_path).execute("SELECT count(*) FROM downlinks").fetchone()[0] == 0


def test_downlink_is_queued_audited_and_its_status_follows_the_module(site, operator, db_path):
    token = csrf_token(operator, f"/devices/{DEV}")
    sent = send_downlink(operator, token, command="set_interval", seconds="120")
    assert sent.status_code == 302
    conn = connect(db_path)
    dl = conn.execute("SELECT * FROM downlinks").fetchone()
    assert (dl["command"], json.loads(dl["args"]), dl["status"], dl["source"]) == (
        "set_interval",
        {"seconds": 120},
        "queued",
        "panel",
    )
    audit = conn.execute("SELECT * FROM audit_log WHERE action = 'downlink.queue'").fetchone()
    assert audit["actor"] == "oscar" and audit["target"] == DEV
    assert "queued" in operator.get(f"/devices/{DEV}/fragment?part=downlinks").get_data(as_text=True)
    site.reading()  # the next uplink carries it
    assert "badge-sent" in operator.get(f"/devices/{DEV}/fragment?part=downlinks").get_data(as_text=True)
    site.downlink_result(dl["id"], 0)  # the node answers on port 2
    assert conn.execute("SELECT status FROM downlinks").fetchone()[0] == "acked"
    assert "badge-acked" in operator.get(f"/devices/{DEV}/fragment?part=downlinks").get_data(as_text=True)


def test_acknowledge_alarm(site, operator, db_path):
    alarm_id = raise_alarm(db_path, device_id=DEV)
    token = csrf_token(operator, "/alarms")
    response = operator.post(f"/alarms/{alarm_id}/acknowledge", data={"csrf_token": token})
    assert response.status_code == 302
    conn = connect(db_path)
    alarm = conn.execute("SELECT * FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
    assert (alarm["state"], alarm["acknowledged_by"]) == ("acknowledged", "oscar")
    assert [r["state"] for r in conn.execute("SELECT state FROM alarm_history ORDER BY id")] == [
        "raised",
        "acknowledged",
    ]
    assert conn.execute("SELECT count(*) FROM outbox WHERE kind = 'alarm'").fetchone()[0] == 2
    assert (
        conn.execute("SELECT count(*) FROM audit_log WHERE action = 'alarm.acknowledge'").fetchone()[0] == 1
    )
    again = operator.post(
        f"/alarms/{alarm_id}/acknowledge",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert "already acknowledged" in again.get_data(as_text=True)
    assert operator.post("/alarms/999/acknowledge", data={"csrf_token": token}).status_code == 404


def test_alarm_filters(site, admin, db_path):
    first = raise_alarm(db_path, device_id=DEV, message="first one")
    raise_alarm(db_path, device_id=OTHER, message="second one")
    conn = connect(db_path)
    from edge import alarms

    alarms.clear(conn, first, now=time.time())
    open_page = admin.get("/alarms").get_data(as_text=True)
    assert "second one" in open_page and "first one" not in open_page
    cleared = admin.get("/alarms?state=cleared").get_data(as_text=True)
    assert "first one" in cleared and "second one" not in cleared
    by_device = admin.get(f"/alarms?state=all&device={OTHER}").get_data(as_text=True)
    assert "second one" in by_device and "first one" not in by_device


def test_quarantine_and_adopt(app, operator, db_path):
    from edge import registry

    unknown = "a1a2a3a4a5a6a7a8"
    conn = connect(db_path)
    conn.execute("BEGIN")
    registry.note_unknown(
        conn,
        unknown,
        rssi=-99,
        bridge="b0b0b0b0b0b0b0b0",
        frame=b"\x40",
        now=time.time(),
    )
    conn.execute("COMMIT")
    page = operator.get("/quarantine").get_data(as_text=True)
    assert unknown in page and "-99" in page
    token = csrf_token(operator, "/quarantine")
    bad = operator.post(f"/quarantine/{unknown}/adopt", data={"csrf_token": token, "key": "xyz"})
    assert bad.status_code == 400 and "32 hex digits" in bad.get_data(as_text=True)
    ok = operator.post(
        f"/quarantine/{unknown}/adopt",
        data={"csrf_token": token, "key": "ab" * 16, "name": "new pump"},
    )
    assert ok.status_code == 302 and ok.headers["Location"] == f"/devices/{unknown}"
    device = conn.execute("SELECT * FROM devices WHERE id = ?", (unknown,)).fetchone()
    assert device["name"] == "new pump" and bytes(device["key"]) == bytes.fromhex("ab" * 16)
    assert conn.execute("SELECT count(*) FROM quarantine").fetchone()[0] == 0
    assert conn.execute("SELECT actor FROM audit_log WHERE action = 'device.add'").fetchone()[0] == "oscar"
    assert (
        operator.post(
            f"/quarantine/{unknown}/adopt", data={"csrf_token": token, "key": "ab" * 16}
        ).status_code
        == 404
    )


def test_delete_data_needs_the_typed_id_and_is_audited(site, admin, db_path, monkeypatch):
    from webui.views import devices

    monkeypatch.setattr(devices, "DELETE_CHUNK", 2)  # 5 readings: deleted in 3 transactions
    token = csrf_token(admin, f"/devices/{DEV}")
    conn = connect(db_path)

    def stored(device):
        return conn.execute("SELECT count(*) FROM reading_list WHERE device_id = ?", (device,)).fetchone()[0]

    mark_synced(conn, DEV, 2)  # the cloud has fcnt 1 and 2; 3 to 5 still wait for it
    wrong = admin.post(f"/devices/{DEV}/delete-data", data={"csrf_token": token, "confirm": OTHER})
    assert wrong.status_code == 400 and "nothing was deleted" in wrong.get_data(as_text=True)
    assert stored(DEV) == 5
    ok = admin.post(f"/devices/{DEV}/delete-data", data={"csrf_token": token, "confirm": DEV})
    assert ok.status_code == 302
    assert (stored(DEV), stored(OTHER)) == (0, 1)
    # What the cloud had not had yet does not leave the site: only OTHER's reading still waits.
    assert backlog.summary(conn).readings == 1
    entry = conn.execute("SELECT * FROM audit_log WHERE action = 'device.delete_data'").fetchone()
    assert entry["actor"] == "alice" and json.loads(entry["detail"]) == {"readings": 5, "unsynced": 3}


def test_export_csv_and_json(site, admin):
    t = time.time()
    query = {"device": DEV, "start": str(t - 3600), "end": str(t + 60)}
    response = admin.get("/export/data", query_string={**query, "format": "csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 15  # 5 readings x 3 values
    temps = [float(r["value"]) for r in rows if r["name"] == "temperature"]
    assert temps == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert {r["unit"] for r in rows if r["name"] == "temperature"} == {"°C"}
    data = admin.get("/export/data", query_string={**query, "format": "json"}).get_json()
    assert data["device"] == DEV and len(data["readings"]) == 5
    assert [r["fcnt"] for r in data["readings"]] == [1, 2, 3, 4, 5]
    iso = admin.get(
        "/export/data",
        query_string={
            "device": DEV,
            "start": "2000-01-01T00:00",
            "end": "2099-01-01",
            "format": "json",
        },
    )
    assert iso.status_code == 400 and "366 days" in iso.get_data(as_text=True)


def test_export_validation_messages(site, admin):
    page = admin.get(
        "/export/data",
        query_string={"device": DEV, "start": "yesterday", "end": "1", "format": "xml"},
    ).get_data(as_text=True)
    assert 'id="start-error"' in page and "Not a time" in page
    assert 'id="end-error"' in page and "Choose CSV or JSON." in page


def test_settings_cloud_and_retention(app, admin, db_path):
    token = csrf_token(admin, "/settings")
    bad = admin.post("/settings/cloud", data={"csrf_token": token, "endpoint": "ftp://files"})
    assert bad.status_code == 400 and 'id="endpoint-error"' in bad.get_data(as_text=True)
    assert (
        admin.post(
            "/settings/cloud",
            data={"csrf_token": token, "endpoint": "mqtts://broker.example:8883"},
        ).status_code
        == 302
    )
    bad = admin.post(
        "/settings/retention",
        data={"csrf_token": token, "max_age_days": "0", "max_db_mb": "abc"},
    )
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert 'id="max_age_days-error"' in text and 'id="max_db_mb-error"' in text
    assert (
        admin.post(
            "/settings/retention",
            data={"csrf_token": token, "max_age_days": "30", "max_db_mb": "512"},
        ).status_code
        == 302
    )
    conn = connect(db_path)
    values = {r["key"]: json.loads(r["value"]) for r in conn.execute("SELECT * FROM settings")}
    assert values == {
        "sync.endpoint": "mqtts://broker.example:8883",
        "retention.max_age_days": 30,
        "retention.max_db_bytes": 512 * 1024 * 1024,
    }
    targets = [r[0] for r in conn.execute("SELECT target FROM audit_log WHERE action = 'settings.update'")]
    assert sorted(targets) == [
        "retention.max_age_days",
        "retention.max_db_bytes",
        "sync.endpoint",
    ]


def test_settings_refuse_what_sync_would_ignore_and_store_no_accidental_override(app, admin, db_path):
    token = csrf_token(admin, "/settings")
    for endpoint, message in (
        ("mqtt://broker.example:1883", "plaintext mqtt:// only towards this machine"),
        ("mqtts://broker.example:8883/topic", "without a path"),
    ):
        bad = admin.post("/settings/cloud", data={"csrf_token": token, "endpoint": endpoint})
        text = bad.get_data(as_text=True)
        assert bad.status_code == 400 and message in text.split('id="endpoint-error">')[1].split("</p>")[0]
    # The forms as shown, saved unchanged: the config file's values stay in force (nothing stored).
    assert admin.post("/settings/cloud", data={"csrf_token": token, "endpoint": ""}).status_code == 302
    saved = admin.post(
        "/settings/retention", data={"csrf_token": token, "max_age_days": "90", "max_db_mb": ""}
    )
    assert saved.status_code == 302
    conn = connect(db_path)
    try:
        assert conn.execute("SELECT count(*) FROM settings").fetchone()[0] == 0
    finally:
        conn.close()
    assert "config file" in admin.get("/settings").get_data(as_text=True)


def test_users_and_tokens(app, admin, db_path):
    token = csrf_token(admin, "/settings")
    weak = admin.post(
        "/settings/users",
        data={
            "csrf_token": token,
            "username": "bob",
            "role": "operator",
            "password": "123",
        },
    )
    assert weak.status_code == 400 and "at least 10" in weak.get_data(as_text=True)
    taken = admin.post(
        "/settings/users",
        data={
            "csrf_token": token,
            "username": "ALICE",
            "role": "viewer",
            "password": "long enough pw",
        },
    )
    assert taken.status_code == 400 and "taken" in taken.get_data(as_text=True)
    assert (
        admin.post(
            "/settings/users",
            data={
                "csrf_token": token,
                "username": "bob",
                "role": "operator",
                "password": "long enough pw",
            },
        ).status_code
        == 302
    )
    conn = connect(db_path)
    bob = conn.execute("SELECT * FROM users WHERE username = 'bob'").fetchone()
    assert bob["role"] == "operator"
    p = f"u{bob['id']}-"
    assert (
        admin.post(
            f"/settings/users/{bob['id']}",
            data={"csrf_token": token, p + "role": "viewer", p + "disabled": "y"},
        ).status_code
        == 302
    )
    bob = conn.execute("SELECT * FROM users WHERE username = 'bob'").fetchone()
    assert (bob["role"], bob["disabled"]) == ("viewer", 1)
    me = conn.execute("SELECT id FROM users WHERE username = 'alice'").fetchone()[0]
    demote = admin.post(f"/settings/users/{me}", data={"csrf_token": token, f"u{me}-role": "viewer"})
    assert demote.status_code == 400 and "cannot demote" in demote.get_data(as_text=True)

    created = admin.post(
        "/settings/tokens",
        data={"csrf_token": token, "user_id": str(me), "name": "scada"},
    )
    assert created.status_code == 200
    text = created.get_data(as_text=True)
    secret = text.split('<code id="new-token">')[1].split("</code>")[0]
    row = conn.execute("SELECT * FROM api_tokens").fetchone()
    assert (
        row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest() and secret not in row["token_hash"]
    )
    api = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert api.get_json() == {"username": "alice", "role": "admin"}
    assert admin.post(f"/settings/tokens/{row['id']}/revoke", data={"csrf_token": token}).status_code == 302
    assert (
        app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    )
    actions = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["user.create", "user.update", "token.create", "token.revoke"]
    assert "token.revoke" in admin.get("/audit").get_data(as_text=True)


def test_oversize_bodies_are_refused(site, admin, db_path):
    token = csrf_token(admin, "/settings")
    response = admin.post("/settings/cloud", data={"csrf_token": token, "endpoint": "x" * 200_000})
    assert response.status_code == 413
    assert connect(db_path).execute("SELECT count(*) FROM settings").fetchone()[0] == 0


def test_nothing_typed_changes_stored_readings(site, admin, db_path):
    """Every form but the explicit delete, fed hostile values: the readings stay byte for byte."""
    before = readings_digest(db_path)
    token = csrf_token(admin, "/settings")
    hostile = [
        "'; DELETE FROM readings; --",
        "<script>x</script>",
        "9" * 400,
        "-1",
        "\x00",
        "1e309",
    ]
    posts = [
        f"/devices/{DEV}/downlinks",
        "/settings/cloud",
        "/settings/retention",
        "/settings/users",
        "/settings/tokens",
        f"/quarantine/{DEV}/adopt",
        "/alarms/1/acknowledge",
    ]
    for url in posts:
        for value in hostile:
            fields = {
                k: value
                for k in (
                    "command",
                    "seconds",
                    "output",
                    "value",
                    "endpoint",
                    "max_age_days",
                    "max_db_mb",
                    "username",
                    "password",
                    "role",
                    "name",
                    "user_id",
                    "key",
                )
            }
            response = admin.post(url, data={**fields, "csrf_token": token})
            assert response.status_code < 500, (url, value)
    assert readings_digest(db_path) == before


def test_live_events_announce_new_readings(site, app, admin, db_path):
    app.config.update(SSE_POLL_S=0.05, SSE_MAX_S=5.0)
    conn = connect(db_path)
    # "r" follows the newest time a device was heard (the writer sets it with the readings).
    cursor = conn.execute("SELECT max(last_seen) FROM devices").fetchone()[0]
    response = admin.get(f"/events?cursor=r:{cursor!r},d:0,a:0,q:0,s:0", buffered=False)
    assert response.mimetype == "text/event-stream"
    stream = response.response
    assert next(stream).startswith(b"retry:")
    site.reading()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        chunk = next(stream).decode()
        if chunk.startswith("id:"):
            break
    else:
        pytest.fail("no change event")
    data = json.loads(chunk.split("data: ", 1)[1])
    assert data["readings"] == [DEV]
    heard = conn.execute("SELECT last_seen FROM devices WHERE id = ?", (DEV,)).fetchone()[0]
    assert heard > cursor
    assert chunk.split("\n")[0] == "id: " + ",".join(
        f"{k}:{v!r}" for k, v in sorted({"r": heard, "d": 0, "a": 0, "q": 0, "s": 0}.items())
    )
    response.close()


def test_device_page_shows_the_power_estimate_and_battery_life(site, admin):
    # a node's port-3 status (issue 13): "e" mAh/day from its power model, "c" its cell (mAh)
    site._send(3, b'{"e":2.65,"c":2600,"j":0}', rssi=-70, snr=9.0, now=time.time())
    page = admin.get(f"/devices/{DEV}").get_data(as_text=True)
    assert 'id="power-estimate"' in page
    assert "2.65 mAh a day" in page and "981 days" in page and "2.7 years" in page and "2600 mAh cell" in page
