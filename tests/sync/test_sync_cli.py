"""`fieldpost sync ...` and `python -m edge.sync ...`: status, retention, help on every command."""

from __future__ import annotations

import json
import subprocess
import sys

import click
from click.testing import CliRunner
from sync_helpers import REPO, buffer_readings, mark_first_synced, write_toml

from edge.store import transaction
from edge.sync import state
from edge.sync.cli import sync_group


def test_every_sync_command_has_help():
    for name, command in sync_group.commands.items():
        assert command.help and len(command.help) > 20, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"sync {name} {param.opts}"


def test_status_as_json_and_text(db):
    path, conn = db
    ids = buffer_readings(conn, 40)
    mark_first_synced(conn, ids, 10)
    with transaction(conn):
        state.record_error(conn, "mqtt", "mqtt connect 127.0.0.1:1: refused", 2.0)
    runner = CliRunner()
    out = runner.invoke(sync_group, ["status", "--db", str(path), "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["backlog"] == 30 and doc["last_error"].endswith("refused")
    out = runner.invoke(sync_group, ["status", "--db", str(path)])
    assert "backlog: 30 messages" in out.output and "refused" in out.output


def test_under_fieldpost_the_global_db_option_is_used(db):
    from edge.cli import main

    path, conn = db
    buffer_readings(conn, 5)
    out = CliRunner().invoke(main, ["--db", str(path), "sync", "status", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["backlog"] == 5


def test_retention_command_applies_the_configured_policy(db, tmp_path):
    path, conn = db
    ids = buffer_readings(conn, 100, created_at=1.0)
    mark_first_synced(conn, ids, 60)
    config = tmp_path / "f.toml"
    config.write_text("[retention]\nmax_age_days = 1\n")
    out = CliRunner().invoke(sync_group, ["retention", "--db", str(path), "--config", str(config), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["aged_out"] == 60
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 40


def test_run_refuses_a_bad_config_naming_the_key(db, tmp_path):
    path, _ = db
    config = write_toml(tmp_path / "s.toml", {"mqtt": {"qos": 2}})
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge.sync",
            "run",
            "--db",
            str(path),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0 and "sync.mqtt.qos" in proc.stderr
