"""Progress bars only on a terminal (a real pty), never in a pipe; --json on the listing commands."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from edge.cli import main
from edge.gpio.cli import gpio_group
from edge.store import connect
from tests.storekit import put_readings

REPO = Path(__file__).resolve().parents[2]


def run_fieldpost(args, *, stderr_tty):
    """Run ``python -m edge ARGS`` with standard error on a pseudo-terminal or on a pipe; returns
    (exit code, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="100")
    if not stderr_tty:
        done = subprocess.run(
            [sys.executable, "-m", "edge", *args], env=env, capture_output=True, timeout=120
        )
        return done.returncode, done.stdout.decode(), done.stderr.decode()
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", *args], env=env, stdout=subprocess.PIPE, stderr=follower
        )
        os.close(follower)
        out = proc.stdout.read().decode()
        proc.wait(120)
        err = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            err += chunk
        return proc.returncode, out, err.decode(errors="replace")
    finally:
        os.close(leader)


def test_backup_restore_vacuum_and_export_draw_a_bar_on_a_terminal_only(db_path, tmp_path):
    conn = connect(db_path)
    put_readings(conn, "a1b2c3d4e5f60708", range(20000))  # three values each
    conn.execute("DELETE FROM readings WHERE (id & 4294967295) < 10000")  # whole pages free: vacuum
    conn.close()
    db = ["--db", str(db_path)]
    code, out, err = run_fieldpost([*db, "db", "backup", str(tmp_path / "a.db")], stderr_tty=True)
    assert code == 0 and "backed up" in out
    assert "backing up" in err and "100%" in err
    code, out, err = run_fieldpost([*db, "db", "backup", str(tmp_path / "b.db")], stderr_tty=False)
    assert code == 0 and "backed up" in out and err == ""

    code, out, err = run_fieldpost([*db, "db", "vacuum"], stderr_tty=True)
    assert code == 0 and "freeing pages" in err and "100%" in err, err
    code, out, err = run_fieldpost(
        [*db, "db", "export", "--output", str(tmp_path / "x.csv")], stderr_tty=True
    )
    assert code == 0 and "exporting" in err and "100%" in err
    assert (tmp_path / "x.csv").read_text().count("\n") == 1 + 10000 * 3
    fresh = tmp_path / "fresh.db"
    code, out, err = run_fieldpost(
        ["--db", str(fresh), "db", "restore", "--yes", str(tmp_path / "a.db")], stderr_tty=True
    )
    assert code == 0 and "restoring" in err and "100%" in err
    code, out, err = run_fieldpost(["--db", str(fresh), "db", "check"], stderr_tty=False)
    assert (code, out.strip(), err) == (0, "ok", "")


def test_json_on_listing_commands(db_path, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["--db", str(db_path), "db", "check", "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == {
        "db": str(db_path),
        "ok": True,
        "problems": [],
    }
    conn = connect(db_path)
    conn.execute("DELETE FROM migrations WHERE name = '0012_backups'")
    conn.close()
    result = runner.invoke(main, ["--db", str(db_path), "db", "check", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["problems"] == ["migration pending: 0012_backups"]

    config = tmp_path / "fieldpost.toml"
    config.write_text('[ingest]\nhigh_water = 1234\n[notify.email]\npassword = "hunter2"\n')
    result = runner.invoke(main, ["--config", str(config), "config", "--json"])
    assert result.exit_code == 0
    shown = json.loads(result.output)
    assert shown["ingest"]["high_water"] == 1234 and shown["file"] == str(config)
    assert shown["other_sections"] == ["notify"] and "hunter2" not in result.output

    result = runner.invoke(gpio_group, ["show", "--json"])
    assert result.exit_code == 0, result.output
    gpio = json.loads(result.output)
    text = runner.invoke(gpio_group, ["show"]).output
    assert f"buzzer       GPIO{gpio['buzzer']}" in text
    assert all(f"GPIO{pin}" in text for pin in gpio["leds"].values())
    assert set(gpio["codes"]) == {"link_down", "cloud_unreachable", "alarm", "alarm_buzzer"}
