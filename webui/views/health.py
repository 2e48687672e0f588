"""The site health page (every role) and "download a backup now" (admin: the copy holds keys and
password hashes)."""

from __future__ import annotations

import os
import tempfile
import time

from flask import Blueprint, abort, after_this_request, current_app, render_template, send_file

from webui import audit, site_health
from webui.db import get_db, now, write
from webui.forms import ActionForm
from webui.views.auth import actor, role_required

bp = Blueprint("health", __name__)


@bp.route("/health-page")
def index():
    return render_template(
        "health.html",
        health=site_health.snapshot(current_app.config["DATABASE"]),
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
