"""The site health page (every role): the appliance's figures and the edge's backups
(edge.backup's ``backups`` table); downloading one, or a fresh copy now, is for admins (a copy
holds keys and password hashes) and audited."""

from __future__ import annotations

import os
import tempfile
import time

from flask import Blueprint, abort, after_this_request, current_app, render_template, send_file

from edge.backup import records as backup_records
from webui import audit, site_health
from webui.db import get_db, now, write
from webui.forms import ActionForm
from webui.views.auth import actor, role_required

bp = Blueprint("health", __name__)
ROW_ID = "int(max=9223372036854775807)"


@bp.route("/health-page")
def index():
    return render_template(
        "health.html",
        health=site_health.snapshot(current_app.config["DATABASE"]),
        backups=backup_records.listing(get_db(), limit=30),
        action_form=ActionForm(formdata=None),
        now=now(),
    )


@bp.route("/health-page/backup", methods=["POST"])
@role_required("admin")
def backup():
    if not ActionForm().validate_on_submit():
        abort(400)
    db_path = current_app.config["DATABASE"]
    fd, target = tempfile.mkstemp(
        prefix=".panel-backup-", suffix=".db", dir=os.path.dirname(os.path.abspath(db_path))
    )
    os.close(fd)

    @after_this_request
    def _remove(response):
        # The file is open for sending already; unlinking it now frees the disk once it is sent.
        try:
            os.unlink(target)
        except OSError:
            pass
        return response

    size = site_health.backup_to(get_db(), target)
    with write() as conn:
        audit.record(conn, actor=actor(), action="backup.download", detail={"bytes": size}, now=now())
    name = "fieldpost-backup-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(now())) + ".db"
    return send_file(target, as_attachment=True, download_name=name, mimetype="application/vnd.sqlite3")


@bp.route(f"/health-page/backups/<{ROW_ID}:backup_id>/download", methods=["POST"])
@role_required("admin")
def download_backup(backup_id: int):
    """One of the edge's checked backups, by its row: the path comes from the table, never the request."""
    if not ActionForm().validate_on_submit():
        abort(400)
    row = (
        get_db()
        .execute("SELECT kind, path, status, started_at FROM backups WHERE id = ?", (backup_id,))
        .fetchone()
    )
    if row is None or row["status"] != "ok" or not os.path.isfile(row["path"]):
        abort(404)
    with write() as conn:
        audit.record(
            conn,
            actor=actor(),
            action="backup.download",
            target=str(backup_id),
            detail={"kind": row["kind"]},
            now=now(),
        )
    return send_file(
        row["path"],
        as_attachment=True,
        download_name=os.path.basename(row["path"]),
        mimetype="application/vnd.sqlite3",
    )
