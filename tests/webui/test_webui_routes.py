"""Every route: a session is needed (except log in, first run, static files and the API document),
a viewer changes nothing, and every admin page renders."""

from __future__ import annotations

import pytest

from tests.webui.helpers import Module, add_device, add_panel_rule, csrf_token, raise_alarm
from webui import create_app
from webui.views.auth import VIEWER_POSTS

DEVICE = "00112233aabbccdd"
PUBLIC = {
    "auth.login",
    "auth.login_code",
    "auth.setup",
    "static",
    "api.openapi",
    "meta.favicon",
    "meta.manifest",
}
SAMPLE_ARGS = {
    "device_id": DEVICE,
    "alarm_id": 1,
    "user_id": 1,
    "token_id": 1,
    "rule_id": 1,
    "filename": "app.css",
    "key": "a" * 64,
    "target_id": 1,
    "route_id": 1,
    "backup_id": 1,
    "job_id": 1,
}


# Tables the panel fills from the readings as pages are read (the overview's sparklines): a cache,
# not a change anyone made.
DERIVED_CACHES = {"panel_hourly", "panel_hourly_cursor"}


def page_rules(app):
    """(endpoint, url, methods) for every route outside the bearer-token API."""
    out = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi":
                continue
            url = rule.build({k: SAMPLE_ARGS[k] for k in rule.arguments})[1]
            out.append((rule.endpoint, url, sorted(rule.methods - {"HEAD", "OPTIONS"})))
    return out


@pytest.fixture
def seeded(app, db_path):
    add_device(db_path, DEVICE, name="pump")
    Module(db_path, DEVICE).reading()
    raise_alarm(db_path, device_id=DEVICE)
    add_panel_rule(db_path)  # rule id 1, so the rule pages have something to show
    return app


def test_route_table_is_what_the_tests_cover(app):
    endpoints = {endpoint for endpoint, _, _ in page_rules(app)}
    assert {
        "overview.index",
        "devices.show",
        "alarms.acknowledge",
        "settings.index",
        "export.data",
        "devices.delete_data",
        "devices.adopt",
        "overview.events",
    } <= endpoints


def test_every_route_needs_a_session(seeded):
    anonymous = seeded.test_client()
    token = csrf_token(anonymous, "/login")  # a valid token, so only the missing session can refuse
    for endpoint, url, methods in page_rules(seeded):
        if endpoint in PUBLIC:
            continue
        for method in methods:
            response = anonymous.open(url, method=method, data={"csrf_token": token})
            if method == "GET" and response.status_code == 302:
                assert response.headers["Location"].startswith("/login"), (
                    endpoint,
                    method,
                )
            else:
                assert response.status_code == 401, (
                    endpoint,
                    method,
                    response.status_code,
                )


def test_public_routes_answer_without_a_session(seeded):
    anonymous = seeded.test_client()
    assert anonymous.get("/login").status_code == 200
    assert anonymous.get("/static/app.css").status_code == 200
    assert anonymous.get("/static/vendor/uplot/uPlot.iife.min.js").status_code == 200
    assert anonymous.get("/api/openapi.json").status_code == 200
    icon = anonymous.get("/favicon.ico")
    assert (
        icon.status_code == 200 and icon.mimetype == "image/x-icon" and icon.data[:4] == b"\x00\x00\x01\x00"
    )
    manifest = anonymous.get("/manifest.webmanifest")
    assert manifest.mimetype == "application/manifest+json" and manifest.get_json()["icons"]
    for entry in manifest.get_json()["icons"]:
        assert anonymous.get(entry["src"]).data[:8] == b"\x89PNG\r\n\x1a\n"
    assert anonymous.get("/setup").status_code == 302  # users exist: first run is over


def test_viewer_can_change_nothing(seeded, viewer, db_path):
    from edge.store import connect

    def snapshot():
        conn = connect(db_path)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        tables = [t for t in tables if t not in DERIVED_CACHES]
        return {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in tables}

    before = [tuple(map(tuple, rows)) for rows in snapshot().values()]
    token = csrf_token(viewer)
    forms = {
        "confirm": DEVICE,
        "command": "reboot",
        "key": "00" * 16,
        "endpoint": "mqtts://x:8883",
        "max_age_days": "5",
        "max_db_mb": "100",
        "username": "mallory",
        "password": "x" * 12,
        "role": "admin",
        "name": "t",
        "user_id": "1",
    }
    refused = 0
    for endpoint, url, methods in page_rules(seeded):
        for method in methods:
            if method == "GET" or endpoint in VIEWER_POSTS or endpoint in PUBLIC:
                continue
            response = viewer.open(url, method=method, data={**forms, "csrf_token": token})
            assert response.status_code == 403, (endpoint, response.status_code)
            refused += 1
    assert refused >= 10
    after = [tuple(map(tuple, rows)) for rows in snapshot().values()]
    assert before == after


def test_viewer_sees_no_action_buttons(seeded, viewer):
    assert "Acknowledge" not in viewer.get("/alarms").get_data(as_text=True)
    page = viewer.get(f"/devices/{DEVICE}").get_data(as_text=True)
    assert "Queue downlink" not in page and "Delete readings" not in page
    assert viewer.get("/settings").status_code == 403
    assert viewer.get("/audit").status_code == 403


def test_operator_cannot_reach_admin_pages(seeded, operator):
    assert operator.get("/settings").status_code == 403
    token = csrf_token(operator)
    assert (
        operator.post(
            f"/devices/{DEVICE}/delete-data",
            data={"csrf_token": token, "confirm": DEVICE},
        ).status_code
        == 403
    )


def test_every_get_page_renders_for_the_admin(seeded, admin):
    for endpoint, url, methods in page_rules(seeded):
        if "GET" not in methods or endpoint in ("overview.events", "auth.setup"):
            continue
        response = admin.get(url)
        if endpoint == "export.data":  # without parameters: the form again, with what is missing
            assert response.status_code == 400 and "Choose a registered device" in response.get_data(
                as_text=True
            )
        elif endpoint in ("auth.login", "auth.login_code"):  # already signed in / no password step
            assert response.status_code == 302
        else:
            assert response.status_code == 200, (endpoint, url, response.status_code)


def test_security_headers(seeded, admin):
    response = admin.get("/")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_unknown_urls_are_404_even_signed_in(seeded, admin):
    assert admin.get("/no/such/page").status_code == 404
    assert admin.get("/devices/zz").status_code == 404
    assert admin.get("/devices/ffffffffffffffff").status_code == 404


def test_database_path_is_required(monkeypatch):
    from edge.errors import ConfigError

    monkeypatch.delenv("FIELDPOST_DB", raising=False)
    with pytest.raises(ConfigError, match="DATABASE"):
        create_app({})
