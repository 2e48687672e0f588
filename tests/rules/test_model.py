"""Rule definitions are data, validated field by field; a malformed rule is refused naming the field."""

import json

import pytest

from edge.errors import ValidationError
from edge.rules import (
    delete_rule,
    list_rules,
    load_enabled,
    parse_rules,
    save_rule,
    set_enabled,
    sync_config_rules,
    validate_rule,
)

GOOD = {"name": "freezer", "kind": "threshold", "metric": "temperature", "above": 8, "for_s": 600}


@pytest.mark.parametrize(
    ("definition", "field", "words"),
    [
        ({**GOOD, "name": ""}, "name", "required"),
        ({**GOOD, "kind": "python"}, "kind", "must be one of"),
        ({**GOOD, "above": "8"}, "above", "must be a number"),
        ({**GOOD, "above": float("nan")}, "above", "must be a number"),
        ({**GOOD, "below": 2}, "above", "exactly one"),
        ({k: v for k, v in GOOD.items() if k != "metric"}, "metric", "required"),
        ({**GOOD, "for_s": -1}, "for_s", "at least 0"),
        ({**GOOD, "hysteresis": True}, "hysteresis", "must be a number"),
        ({**GOOD, "severity": "panic"}, "severity", "must be one of"),
        ({**GOOD, "code": "__import__('os').system('rm -rf /')"}, "code", "not a field"),
        ({**GOOD, "message": "${value.__class__}"}, "message", "placeholder"),
        ({**GOOD, "message": "$secret"}, "message", "unknown placeholder"),
        ({**GOOD, "devices": ["not-a-device"]}, "devices[0]", "16 hex digits"),
        ({**GOOD, "action": {"command": "format_disk"}}, "action.command", "is not one of"),
        (
            {**GOOD, "action": {"command": "set_output", "args": {"output": 1, "value": 7}}},
            "action.args.value",
            "",
        ),
        ({**GOOD, "action": {"command": "reboot", "cooldown_s": "1h"}}, "action.cooldown_s", "number"),
        ({**GOOD, "action": {"command": "reboot", "when": "now"}}, "action.when", "not a field"),
        ({"name": "l", "kind": "link_down"}, "for_s", "required"),
        (
            {"name": "l", "kind": "link_down", "for_s": 60, "action": {"command": "reboot"}},
            "action.device",
            "",
        ),
        ({"name": "b", "kind": "buffer", "above": 120}, "above", "below 100"),
        ({"name": "r", "kind": "rate", "metric": "t", "max_rate": 0}, "max_rate", "above 0"),
        ({"name": "s", "kind": "silent", "intervals": 0.5}, "intervals", "at least 1"),
    ],
)
def test_malformed_rule_names_the_field(definition, field, words):
    with pytest.raises(ValidationError) as err:
        validate_rule(definition)
    assert err.value.field == field
    assert words in err.value.message


def test_a_good_rule_round_trips_through_its_stored_definition():
    rule = validate_rule(
        {
            **GOOD,
            "devices": ["A1B2C3D4E5F60708"],
            "action": {"command": "set_output", "args": {"output": 2, "value": "1"}},
        }
    )
    assert rule.devices == ("a1b2c3d4e5f60708",)
    assert rule.action.args == {"output": 2, "value": 1}
    assert validate_rule(json.loads(json.dumps(rule.to_definition()))) == rule


def test_config_errors_name_the_rule_by_position():
    with pytest.raises(ValidationError) as err:
        parse_rules([GOOD, {**GOOD, "name": "other", "above": "warm"}])
    assert err.value.field == "rules[1].above"
    with pytest.raises(ValidationError) as err:
        parse_rules([GOOD, GOOD])
    assert err.value.field == "rules[1].name" and "earlier" in err.value.message
    with pytest.raises(ValidationError) as err:
        parse_rules({"name": "x"})
    assert err.value.field == "rules"


def test_config_rules_from_toml(conn):
    import tomllib

    text = """
    [[rules]]
    name = "freezer"
    kind = "threshold"
    metric = "temperature"
    above = 8.0
    for_s = 600
    severity = "critical"
    [rules.action]
    command = "set_output"
    args = { output = 1, value = 1 }
    cooldown_s = 1800

    [[rules]]
    name = "quiet"
    kind = "silent"
    intervals = 3
    """
    rules = parse_rules(tomllib.loads(text)["rules"])
    sync_config_rules(conn, rules, now=1.0)
    assert [(r.name, r.source) for r in list_rules(conn)] == [("freezer", "config"), ("quiet", "config")]
    assert [r.name for r in load_enabled(conn)] == ["freezer", "quiet"]
    # the config file is the truth: a rule removed from it disappears, a changed one is updated
    sync_config_rules(conn, parse_rules([{**GOOD, "above": 9}]), now=2.0)
    assert [(r.name, r.definition["above"]) for r in list_rules(conn)] == [("freezer", 9.0)]


def test_panel_rules_are_validated_audited_and_kept_apart_from_config_rules(conn):
    sync_config_rules(conn, parse_rules([GOOD]), now=1.0)
    with pytest.raises(ValidationError) as err:
        save_rule(conn, {**GOOD, "above": "x"}, actor="admin", now=2.0)
    assert err.value.field == "above"
    with pytest.raises(ValidationError) as err:
        save_rule(conn, GOOD, actor="admin", now=2.0)
    assert err.value.field == "name" and "config file" in err.value.message
    config_id = list_rules(conn)[0].id
    with pytest.raises(ValidationError):
        set_enabled(conn, config_id, False, actor="admin", now=2.0)
    assert len(list_rules(conn)) == 1

    rule_id = save_rule(conn, {**GOOD, "name": "warm"}, actor="alice", now=3.0)
    save_rule(conn, {**GOOD, "name": "warm", "above": 10}, actor="alice", now=4.0, rule_id=rule_id)
    set_enabled(conn, rule_id, False, actor="bob", now=5.0)
    assert [r.name for r in load_enabled(conn)] == ["freezer"]
    delete_rule(conn, rule_id, actor="bob", now=6.0)
    audit = conn.execute("SELECT actor, action, target FROM audit_log ORDER BY id").fetchall()
    assert [tuple(r) for r in audit] == [
        ("alice", "rule.create", "warm"),
        ("alice", "rule.update", "warm"),
        ("bob", "rule.disable", "warm"),
        ("bob", "rule.delete", "warm"),
    ]
