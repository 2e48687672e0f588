"""The rule editor: an admin's rule is stored through edge.rules and then really evaluated; bad rules are
refused next to their field; config rules are read-only; nobody else changes anything; CSRF; escaping."""

from __future__ import annotations

import json

import pytest

from edge import rules as edge_rules
from edge.store import connect, transaction
from tests.webui.helpers import Module, add_device, add_panel_rule, csrf_token

DEVICE = "00112233aabbccdd"


def _db(db_path):
    return connect(db_path)


def _rules(db_path) -> list[edge_rules.StoredRule]:
    conn = _db(db_path)
    try:
        return edge_rules.list_rules(conn)
    finally:
        conn.close()


def _audit(db_path, prefix: str = "rule.") -> list[tuple]:
    conn = _db(db_path)
    try:
        return [
            tuple(r)
            for r in conn.execute(
                "SELECT actor, action, target FROM audit_log WHERE action LIKE ? ORDER BY id", (prefix + "%",)
            )
        ]
    finally:
        conn.close()


def _form(client, **fields) -> dict:
    base = {
        "csrf_token": csrf_token(client, "/rules/new"),
        "name": "freezer warm",
        "kind": "threshold",
        "severity": "critical",
        "enabled": "y",
        "metric": "temperature",
        "above": "8",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def _config_rule(db_path) -> int:
    conn = _db(db_path)
    try:
        with transaction(conn):
            edge_rules.sync_config_rules(
                conn,
                edge_rules.parse_rules(
                    [{"name": "tank low", "kind": "threshold", "metric": "level", "below": 10.0}]
                ),
                now=1.0,
            )
        return conn.execute("SELECT id FROM rules WHERE name = 'tank low'").fetchone()[0]
    finally:
        conn.close()


def test_admin_creates_a_threshold_rule_that_the_engine_then_runs(app, admin, db_path):
    add_device(db_path, DEVICE, name="freezer")
    response = admin.post(
        "/rules/new",
        data=_form(
            admin,
            hysteresis="1",
            message="freezer at $value on $device",
            action_command="set_output",
            action_output="1",
            action_value="1",
            action_cooldown_s="600",
        ),
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    [rule] = _rules(db_path)
    assert (rule.name, rule.source, rule.enabled) == ("freezer warm", "panel", True)
    assert rule.definition["above"] == 8.0 and rule.definition["hysteresis"] == 1.0
    assert rule.definition["action"] == {
        "command": "set_output",
        "args": {"output": 1, "value": 1},
        "cooldown_s": 600.0,
        "ttl_s": 3600.0,
        "on": "raised",
    }
    # edge.rules audits the save itself: exactly one entry, by the admin.
    assert _audit(db_path) == [("alice", "rule.create", "freezer warm")]
    page = admin.get("/rules").get_data(as_text=True)
    assert "freezer warm" in page and "set_output" in page

    # The stored rule works: real ingest of a reading, then the engine on that reading.
    module = Module(db_path, DEVICE)
    engine = edge_rules.RuleEngine(lambda: connect(db_path))
    try:
        cool = module.reading(temperature=5.0).reading
        engine.on_readings([cool.id])
        warm = module.reading(temperature=9.5).reading
        engine.on_readings([warm.id])
    finally:
        engine.close()
    conn = _db(db_path)
    try:
        alarms = conn.execute("SELECT rule, device_id, severity, message, reading_id FROM alarms").fetchall()
        downlinks = conn.execute("SELECT device_id, command, args, source FROM downlinks").fetchall()
    finally:
        conn.close()
    assert [tuple(a) for a in alarms] == [
        ("freezer warm", DEVICE, "critical", f"freezer at 9.5 on {DEVICE}", warm.id)
    ]
    assert len(downlinks) == 1
    assert downlinks[0]["command"] == "set_output" and json.loads(downlinks[0]["args"]) == {
        "output": 1,
        "value": 1,
    }


@pytest.mark.parametrize(
    ("fields", "field_id", "text"),
    [
        ({"below": "2"}, "above", "exactly one of"),  # both above and below
        ({"above": "warm"}, "above", "Enter a number"),  # not a number (the form refuses it)
        ({"metric": ""}, "metric", "required"),
        ({"kind": "silent", "above": None, "metric": None, "for_s": "60"}, "for_s", "not a field"),
        ({"message": "at ${value.__class__}"}, "message", "placeholder"),
        ({"devices": "00112233aabbccdd nothex"}, "devices", "16 hex digits"),
        ({"action_command": "set_interval", "action_seconds": "5"}, "action_seconds", "outside 10"),
        ({"action_command": "set_output", "action_output": "1"}, "action_value", "required for set_output"),
        ({"name": "<b>x</b>"}, "name", "letters"),
    ],
)
def test_a_malformed_rule_shows_its_field_error_and_stores_nothing(admin, db_path, fields, field_id, text):
    response = admin.post("/rules/new", data=_form(admin, **fields))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    error = page.split(f'id="{field_id}-error">', 1)
    assert len(error) == 2, f"no error next to {field_id}: {page}"
    assert text.lower() in error[1].split("</p>", 1)[0].lower()
    assert 'aria-invalid="true"' in page
    assert _rules(db_path) == [] and _audit(db_path) == []


def test_admin_edits_disables_enables_and_deletes_a_panel_rule(admin, db_path):
    rule_id = add_panel_rule(db_path)
    page = admin.get(f"/rules/{rule_id}/edit").get_data(as_text=True)
    assert 'value="cold room warm"' in page and 'value="8.0"' in page
    response = admin.post(f"/rules/{rule_id}/edit", data=_form(admin, name="cold room warm", above="6.5"))
    assert response.status_code == 302
    assert _rules(db_path)[0].definition["above"] == 6.5
    token = csrf_token(admin, "/rules")
    assert admin.post(f"/rules/{rule_id}/disable", data={"csrf_token": token}).status_code == 302
    assert _rules(db_path)[0].enabled is False
    conn = _db(db_path)
    try:
        assert edge_rules.load_enabled(conn) == []  # the engine no longer runs it
    finally:
        conn.close()
    assert "Enable rule cold room warm" in admin.get("/rules").get_data(as_text=True)
    assert admin.post(f"/rules/{rule_id}/enable", data={"csrf_token": token}).status_code == 302
    assert _rules(db_path)[0].enabled is True
    assert admin.post(f"/rules/{rule_id}/delete", data={"csrf_token": token}).status_code == 302
    assert _rules(db_path) == []
    assert [a[1] for a in _audit(db_path)] == [
        "rule.create",
        "rule.update",
        "rule.disable",
        "rule.enable",
        "rule.delete",
    ]
    assert admin.get(f"/rules/{rule_id}/edit").status_code == 404


def test_viewers_and_operators_see_rules_but_change_nothing(app, viewer, operator, db_path):
    rule_id = add_panel_rule(db_path)
    before = _rules(db_path)
    for client in (viewer, operator):
        page = client.get("/rules").get_data(as_text=True)
        assert "cold room warm" in page
        assert "New rule" not in page and "Delete" not in page and "Edit" not in page
        token = csrf_token(client, "/rules")
        assert client.get("/rules/new").status_code == 403
        assert client.get(f"/rules/{rule_id}/edit").status_code == 403
        assert client.post("/rules/new", data={**_form(client), "csrf_token": token}).status_code == 403
        for action in ("edit", "disable", "enable", "delete"):
            response = client.post(f"/rules/{rule_id}/{action}", data={"csrf_token": token, "name": "x"})
            assert response.status_code == 403, (action, response.status_code)
    assert _rules(db_path) == before
    assert [a[0] for a in _audit(db_path)] == ["test"]  # only the seeding


def test_every_rule_change_needs_the_csrf_token(admin, db_path):
    rule_id = add_panel_rule(db_path)
    before = _rules(db_path)
    form = {k: v for k, v in _form(admin).items() if k != "csrf_token"}
    assert admin.post("/rules/new", data=form).status_code == 400
    assert admin.post(f"/rules/{rule_id}/edit", data={**form, "above": "1"}).status_code == 400
    for action in ("disable", "delete"):
        assert admin.post(f"/rules/{rule_id}/{action}", data={}).status_code == 400
    assert admin.post("/rules/new", data={**form, "csrf_token": "forged"}).status_code == 400
    assert _rules(db_path) == before


def test_config_rules_are_read_only_in_the_panel(admin, db_path):
    rule_id = _config_rule(db_path)
    before = _rules(db_path)
    page = admin.get("/rules").get_data(as_text=True)
    row = page.split(f'id="rule-{rule_id}"', 1)[1].split("</tr>", 1)[0]
    assert "tank low" in row and "config file" in row and "read-only" in row
    assert "<form" not in row and "/edit" not in row
    token = csrf_token(admin, "/rules")
    assert admin.get(f"/rules/{rule_id}/edit").status_code == 409
    edited = admin.post(f"/rules/{rule_id}/edit", data=_form(admin, name="tank low", metric="level"))
    assert edited.status_code == 409 and "config file" in edited.get_data(as_text=True)
    for action in ("disable", "delete"):
        assert admin.post(f"/rules/{rule_id}/{action}", data={"csrf_token": token}).status_code == 409
    # A panel rule cannot take a config rule's name either.
    clash = admin.post("/rules/new", data=_form(admin, name="tank low"))
    assert clash.status_code == 400
    assert "already used by the config file" in clash.get_data(as_text=True).split('id="name-error">')[1]
    assert _rules(db_path) == before and _audit(db_path) == []


def test_rule_names_and_messages_are_shown_escaped(admin, viewer, db_path):
    script = "<script>alert(1)</script>"
    response = admin.post("/rules/new", data=_form(admin, message=f"warm {script}"))
    assert response.status_code == 302
    for client in (admin, viewer):
        page = client.get("/rules").get_data(as_text=True)
        assert script not in page
        assert "warm &lt;script&gt;alert(1)&lt;/script&gt;" in page
    [rule] = _rules(db_path)
    edit = admin.get(f"/rules/{rule.id}/edit").get_data(as_text=True)
    assert script not in edit and "&lt;script&gt;" in edit
    refused = admin.post("/rules/new", data=_form(admin, name=script)).get_data(as_text=True)
    assert script not in refused and "&lt;script&gt;alert(1)&lt;/script&gt;" in refused


def test_the_api_lists_rules_for_any_token(client, tokens, db_path):
    add_panel_rule(db_path)
    _config_rule(db_path)
    response = client.get("/api/v1/rules", headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert response.status_code == 200
    by_name = {r["name"]: r for r in response.get_json()["rules"]}
    assert by_name["cold room warm"]["source"] == "panel" and by_name["tank low"]["source"] == "config"
    assert by_name["tank low"]["definition"]["below"] == 10.0
    assert client.get("/api/v1/rules").status_code == 401
