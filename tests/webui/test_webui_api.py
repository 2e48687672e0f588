"""The JSON API: bearer tokens only, roles, validation with the field named, and the OpenAPI document."""

from __future__ import annotations

import time

import pytest

from edge.store import connect
from tests.webui.helpers import Module, add_device, raise_alarm

DEV = "0011223344556677"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def site(app, db_path):
    add_device(db_path, DEV, name="cold room")
    module = Module(db_path, DEV)
    t = time.time()
    for i in range(3):
        module.reading(temperature=5.0 + i, now=t - 120 + i * 60)
    return module


def test_api_needs_a_bearer_token_not_the_session(site, client, admin, tokens):
    for url in (
        "/api/v1/me",
        "/api/v1/devices",
        f"/api/v1/devices/{DEV}",
        "/api/v1/alarms",
        "/api/v1/sync",
    ):
        assert client.get(url).status_code == 401
        assert admin.get(url).status_code == 401  # a cookie session is not an API credential
        assert client.get(url, headers=bearer("fp_not-a-token")).status_code == 401
        assert client.get(url, headers={"Authorization": "Basic YWxpY2U6eA=="}).status_code == 401
        assert client.get(url, headers=bearer(tokens["viewer"])).status_code == 200
    response = client.get("/api/v1/me")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["error"] == "unauthorized"


def test_read_endpoints(site, client, tokens, db_path):
    h = bearer(tokens["viewer"])
    devices = client.get("/api/v1/devices", headers=h).get_json()["devices"]
    assert [d["id"] for d in devices] == [DEV]
    assert "key" not in devices[0]
    one = client.get(f"/api/v1/devices/{DEV}", headers=h).get_json()
    assert one["online"] is True and one["latest"]["fcnt"] == 3
    readings = client.get(f"/api/v1/devices/{DEV}/readings", headers=h).get_json()["readings"]
    assert [r["fcnt"] for r in readings] == [1, 2, 3]
    assert readings[0]["values"][0] == {
        "channel": 1,
        "name": "temperature",
        "value": 5.0,
        "unit": "°C",
    }
    page = client.get(f"/api/v1/devices/{DEV}/readings?limit=2", headers=h).get_json()["readings"]
    rest = client.get(f"/api/v1/devices/{DEV}/readings?after_id={page[-1]['id']}", headers=h).get_json()[
        "readings"
    ]
    assert [r["fcnt"] for r in page + rest] == [1, 2, 3]
    assert client.get(f"/api/v1/devices/{DEV}/series?window=7d", headers=h).status_code == 200
    sync = client.get("/api/v1/sync", headers=h).get_json()
    assert sync["backlog"] == 3 and sync["oldest_age_s"] >= 0
    assert client.get("/api/v1/quarantine", headers=h).get_json() == {"quarantine": []}
    last_used = (
        connect(db_path).execute("SELECT last_used FROM api_tokens WHERE last_used IS NOT NULL").fetchone()
    )
    assert last_used is not None


def test_bad_parameters_name_the_field(site, client, tokens):
    h = bearer(tokens["viewer"])
    for query, field in (
        ("start=yesterday", "start"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("end=nan", "end"),
    ):
        body = client.get(f"/api/v1/devices/{DEV}/readings?{query}", headers=h).get_json()
        assert body["error"] == "validation" and body["field"] == field, query
    assert client.get("/api/v1/alarms?state=bogus", headers=h).get_json()["field"] == "state"
    assert client.get("/api/v1/devices/ffffffffffffffff", headers=h).status_code == 404
    assert client.get("/api/v1/devices/' OR 1=1 --", headers=h).status_code == 404


def test_viewer_token_cannot_act(site, client, tokens, db_path):
    alarm = raise_alarm(db_path, device_id=DEV)
    h = bearer(tokens["viewer"])
    assert (
        client.post(f"/api/v1/devices/{DEV}/downlinks", json={"command": "reboot"}, headers=h).status_code
        == 403
    )
    assert client.post(f"/api/v1/alarms/{alarm}/acknowledge", headers=h).status_code == 403
    conn = connect(db_path)
    assert conn.execute("SELECT count(*) FROM downlinks").fetchone()[0] == 0
    assert conn.execute("SELECT state FROM alarms").fetchone()[0] == "raised"


def test_operator_queues_a_downlink(site, client, tokens, db_path):
    h = bearer(tokens["operator"])
    response = client.post(
        f"/api/v1/devices/{DEV}/downlinks",
        json={"command": "set_output", "args": {"output": 2, "value": 1}},
        headers=h,
    )
    assert response.status_code == 201
    dl = response.get_json()
    assert (dl["status"], dl["args"], dl["command"]) == (
        "queued",
        {"output": 2, "value": 1},
        "set_output",
    )
    listed = client.get(f"/api/v1/devices/{DEV}/downlinks", headers=h).get_json()["downlinks"]
    assert [d["id"] for d in listed] == [dl["id"]]
    entry = connect(db_path).execute("SELECT * FROM audit_log WHERE action = 'downlink.queue'").fetchone()
    assert entry["actor"] == "oscar"
    bad = client.post(
        f"/api/v1/devices/{DEV}/downlinks",
        json={"command": "set_interval", "args": {"seconds": 1}},
        headers=h,
    )
    assert bad.status_code == 400 and bad.get_json()["field"] == "seconds"
    assert (
        client.post(f"/api/v1/devices/{DEV}/downlinks", data="not json", headers=h).get_json()["field"]
        == "body"
    )
    extra = client.post(
        f"/api/v1/devices/{DEV}/downlinks",
        json={"command": "reboot", "sql": "x"},
        headers=h,
    )
    assert extra.get_json()["field"] == "sql"
    big = client.post(
        f"/api/v1/devices/{DEV}/downlinks",
        json={"command": "config", "args": {"values": {"k": "x" * 100_000}}},
        headers=h,
    )
    assert big.status_code == 413 and big.get_json()["error"] == "too_large"


def test_operator_acknowledges_an_alarm(site, client, tokens, db_path):
    alarm = raise_alarm(db_path, device_id=DEV)
    h = bearer(tokens["operator"])
    body = client.post(f"/api/v1/alarms/{alarm}/acknowledge", headers=h).get_json()
    assert body["acknowledged"] is True and body["alarm"]["state"] == "acknowledged"
    assert body["alarm"]["acknowledged_by"] == "oscar"
    again = client.post(f"/api/v1/alarms/{alarm}/acknowledge", headers=h).get_json()
    assert again["acknowledged"] is False
    assert client.post("/api/v1/alarms/424242/acknowledge", headers=h).status_code == 404
    listed = client.get("/api/v1/alarms?state=acknowledged", headers=h).get_json()["alarms"]
    assert [a["id"] for a in listed] == [alarm]


def test_openapi_document_lists_exactly_the_api_routes(app, client):
    doc = client.get("/api/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = (
                rule.rule.replace("<int(max=9223372036854775807):", "<").replace("<", "{").replace(">", "}")
            )
            served |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == served
