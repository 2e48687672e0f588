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
