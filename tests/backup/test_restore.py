"""`fieldpost db backup / backups / restore` through the real click app: a backup made under load,
restored into a fresh install, has every row; the dry run shows it; a running daemon refuses it."""

from __future__ import annotations

import json
import sqlite3

from click.testing import CliRunner

from edge import config as config_mod
from edge.cli import main
from edge.daemon import Daemon
from edge.store import connect
from tests.conftest import wait_until
from tests.storekit import put_readings


def every_row(path, tables):
    conn = sqlite3.connect(path)
    try:
        return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
    finally:
        conn.close()


def cli(db, *args):
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


def test_a_backup_made_under_load_restores_into_a_fresh_install_with_every_row(
    db_path, tmp_path, ingest_load
):
    load = ingest_load()
    wait_until(lambda: load.committed >= 300, what="the daemon ingesting")
    backup = tmp_path / "usb" / "manual.db"
    backup.parent.mkdir()
    result = cli(db_path, "db", "backup", str(backup))
    load.stop()
    assert result.exit_code == 0, result.output
    assert "rows checked" in result.output

    listed = json.loads(cli(db_path, "db", "backups", "--json").output)
    assert [(b["kind"], b["status"], b["path"]) for b in listed] == [("manual", "ok", str(backup))]
    counts = listed[0]["row_counts"]
    assert counts["readings"] >= 300

    dry = cli(tmp_path / "unused.db", "db", "restore", "--dry-run", "--json", str(backup))
    assert dry.exit_code == 0, dry.output
    contents = json.loads(dry.output)
    assert contents["row_counts"] == counts and "0012_backups" in contents["migrations"]
    assert not (tmp_path / "unused.db").exists()  # a dry run changes nothing
    text = cli(tmp_path / "unused.db", "db", "restore", "--dry-run", str(backup)).output
    assert "readings" in text and str(counts["readings"]) in text and "integrity ok" in text

    fresh = tmp_path / "fresh" / "fieldpost.db"
    assert cli(fresh, "db", "migrate").exit_code == 0
    result = cli(fresh, "db", "restore", "--yes", str(backup))
    assert result.exit_code == 0, result.output
    tables = [t for t in counts if t != "audit_log"]
    assert every_row(fresh, tables) == every_row(backup, tables)
    # the audit log too, plus the restore's own entry
    restored_log, backed_up_log = (
        every_row(fresh, ["audit_log"])["audit_log"],
        every_row(backup, ["audit_log"])["audit_log"],
    )
    assert restored_log[: len(backed_up_log)] == backed_up_log and len(restored_log) == len(backed_up_log) + 1
    # the fresh install's own database is kept aside, whole
    [aside] = [p for p in fresh.parent.iterdir() if ".before-restore-" in p.name and p.suffix != ".db-wal"]
    assert sqlite3.connect(aside).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn = connect(fresh)
    try:
        assert conn.execute("SELECT action FROM audit_log ORDER BY id DESC").fetchone()[0] == "db.restore"
    finally:
        conn.close()


def test_restore_is_refused_while_the_daemon_runs_and_works_once_it_stopped(db_path, tmp_path):
    conn = connect(db_path)
    put_readings(conn, "a1b2c3d4e5f60708", range(100))
    conn.close()
    backup = tmp_path / "b.db"
    assert cli(db_path, "db", "backup", str(backup)).exit_code == 0
    conn = connect(db_path)
    put_readings(conn, "a1b2c3d4e5f60708", range(100, 150))  # after the backup
    conn.close()

    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db_path), "services": False},
            "link": {"discover": False},
            "http": {"enabled": False},
        }
    )
    daemon = Daemon(cfg).start()
    try:
        result = CliRunner().invoke(main, ["--db", str(db_path), "db", "restore", "--yes", str(backup)])
        assert result.exit_code != 0
        assert "daemon is running" in result.output and str(db_path) in result.output
    finally:
        daemon.stop()
    assert sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 150

    result = cli(db_path, "db", "restore", "--yes", str(backup))
    assert result.exit_code == 0, result.output
    assert sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 100
    kept = result.output.split("kept as ")[1].strip()
    assert sqlite3.connect(kept).execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 150


def test_bad_backup_files_are_refused_naming_them_and_change_nothing(db_path, tmp_path):
    missing = tmp_path / "nope.db"
    result = CliRunner().invoke(main, ["--db", str(db_path), "db", "restore", "--yes", str(missing)])
    assert result.exit_code != 0 and f"{missing}: no such backup file" in result.output
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    result = CliRunner().invoke(main, ["--db", str(db_path), "db", "restore", "--yes", str(junk)])
    assert (
        result.exit_code != 0
        and str(junk) in result.output
        and "not a usable SQLite database" in result.output
    )
    assert [p.name for p in db_path.parent.iterdir() if "before-restore" in p.name] == []
    result = CliRunner().invoke(main, ["--db", str(db_path), "db", "backup", str(tmp_path / "gone" / "b.db")])
    assert result.exit_code != 0 and f"{tmp_path / 'gone'}: backup directory does not exist" in result.output
