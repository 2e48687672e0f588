"""`fieldpost rules ...` through the real click app, and the daemon-side config loading."""

import pytest
from click.testing import CliRunner

from edge import alarms
from edge.cli import main
from edge.errors import ConfigError
from edge.rules.service import load_config

CONFIG = """
[edge]
db = "{db}"

[[rules]]
name = "freezer"
kind = "threshold"
metric = "temperature"
above = 8.0
for_s = 600

[notify]
[[notify.webhook]]
url = "http://127.0.0.1:9/hook"
"""


def run(tmp_path, db_path, *args, config=CONFIG):
    path = tmp_path / "fieldpost.toml"
    path.write_text(config.format(db=db_path))
    return CliRunner().invoke(main, ["--config", str(path), "rules", *args])


def test_check_accepts_a_good_config_and_names_the_bad_field(tmp_path, db_path):
    result = run(tmp_path, db_path, "check")
    assert result.exit_code == 0, result.output
    assert "1 rule(s), 1 notification target(s)" in result.output
    result = run(tmp_path, db_path, "check", config=CONFIG.replace("above = 8.0", 'above = "warm"'))
    assert result.exit_code != 0
    assert "rules[0].above: must be a number" in result.output


def test_alarms_and_ack_from_the_command_line(tmp_path, db_path, conn):
    alarm_id = alarms.raise_alarm(
        conn, rule="freezer", device_id=None, severity="critical", message="warm", now=1.0
    )
    result = run(tmp_path, db_path, "alarms")
    assert result.exit_code == 0 and "critical" in result.output and "warm" in result.output
    result = run(tmp_path, db_path, "ack", str(alarm_id), "--by", "night-shift")
    assert result.exit_code == 0 and "acknowledged" in result.output
    assert alarms.get_alarm(conn, alarm_id).acknowledged_by == "night-shift"
    audit = conn.execute("SELECT actor, action, target FROM audit_log").fetchall()
    assert [tuple(a) for a in audit] == [("night-shift", "alarm.acknowledge", str(alarm_id))]
    result = run(tmp_path, db_path, "ack", "999", "--by", "x")
    assert result.exit_code != 0 and "alarm_id" in result.output


def test_list_shows_rules_stored_in_the_database(tmp_path, db_path, conn):
    from edge.rules import parse_rules, sync_config_rules

    sync_config_rules(conn, parse_rules([{"name": "quiet", "kind": "silent"}]), now=1.0)
    result = run(tmp_path, db_path, "list")
    assert result.exit_code == 0 and "quiet" in result.output and "config" in result.output


def test_daemon_config_errors_name_the_key():
    from edge.config import from_dict

    with pytest.raises(ConfigError, match=r"rules\[1\]\.kind"):
        from_dict({"rules": [{"name": "a", "kind": "silent"}, {"name": "b", "kind": "eval"}]})
    with pytest.raises(ConfigError, match=r"notify\.email\.to"):
        from_dict({"notify": {"email": {"host": "h", "to": "nobody"}}})
    rules, notify = load_config(from_dict({}))
    assert rules == [] and notify.targets == ()
    rules, notify = load_config(from_dict({"notify": {"webhook": [{"url": "http://127.0.0.1:9/"}]}}))
    assert [t.target for t in notify.targets] == ["http://127.0.0.1:9/"]
