"""The site health page and "download a backup now"."""

from __future__ import annotations

import sqlite3

from edge.store import connect
from tests.webui.helpers import Module, add_device, csrf_token
from webui import site_health

DEV = "0011223344556677"


def test_readers_take_their_files_and_say_what_is_missing(tmp_path):
    (tmp_path / "temp").write_text("48312\n")
    (tmp_path / "uptime").write_text("93784.52 180000.00\n")
    assert site_health.cpu_temperature_c(tmp_path / "temp") == 48.312
    assert site_health.uptime_s(tmp_path / "uptime") == 93784.52
    assert site_health.cpu_temperature_c(tmp_path / "absent") is None
    (tmp_path / "garbage").write_text("hot")
    assert site_health.cpu_temperature_c(tmp_path / "garbage") is None


def test_health_page_for_every_role(app, viewer, admin):
    page = viewer.get("/health-page").get_data(as_text=True)
    for part in ('id="cpu-temp"', 'id="load"', 'id="uptime"', 'id="buffer-size"', 'id="version"'):
        assert part in page
    assert "Download a backup now" not in page
    assert "Download a backup now" in admin.get("/health-page").get_data(as_text=True)


def test_backup_download_is_a_consistent_database_and_audited(app, admin, operator, db_path, tmp_path):
    add_device(db_path, DEV)
    module = Module(db_path, DEV)
    for _ in range(5):
        module.reading()
    assert operator.post("/health-page/backup", data={"csrf_token": csrf_token(operator)}).status_code == 403
    r = admin.post("/health-page/backup", data={"csrf_token": csrf_token(admin, "/health-page")})
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    copy = tmp_path / "copy.db"
    copy.write_bytes(r.data)
    conn = sqlite3.connect(copy)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 5
    audit = (
        connect(db_path).execute("SELECT actor FROM audit_log WHERE action = 'backup.download'").fetchall()
    )
    assert [a[0] for a in audit] == ["alice"]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".panel-backup-")]
    assert leftovers == []


def test_the_edges_backups_are_listed_and_downloaded_by_admins(app, admin, viewer, db_path, tmp_path):
    from pathlib import Path

    from edge.backup import records
    from edge.backup.copy import make_backup

    add_device(db_path, DEV)
    Module(db_path, DEV).reading()
    folder = tmp_path / "backups"
    folder.mkdir()
    result = make_backup(Path(db_path), folder / "site-daily.db")
    conn = connect(db_path)
    backup_id = records.record_ok(conn, "daily", result)
    pruned = records.record_ok(conn, "weekly", make_backup(Path(db_path), folder / "site-weekly.db"))
    records.mark_pruned(conn, pruned)
    page = viewer.get("/health-page").get_data(as_text=True)
    assert f'id="backup-{backup_id}"' in page and "daily" in page and "pruned" in page
    assert f"/health-page/backups/{backup_id}/download" not in page  # viewers see, admins download
    token = csrf_token(admin, "/health-page")
    got = admin.post(f"/health-page/backups/{backup_id}/download", data={"csrf_token": token})
    assert got.status_code == 200 and got.data == (folder / "site-daily.db").read_bytes()
    assert (
        admin.post(f"/health-page/backups/{pruned}/download", data={"csrf_token": token}).status_code == 404
    )
    viewer_token = csrf_token(viewer, "/health-page")
    refused = viewer.post(f"/health-page/backups/{backup_id}/download", data={"csrf_token": viewer_token})
    assert refused.status_code == 403
    audit = (
        connect(db_path).execute("SELECT target FROM audit_log WHERE action = 'backup.download'").fetchall()
    )
    assert [a[0] for a in audit] == [str(backup_id)]
