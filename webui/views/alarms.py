"""Alarms: the list (filter by state and device) and acknowledge."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from webui import audit, queries
from webui.db import get_db, now, write
from webui.edge_adapters import alarms as edge_alarms
from webui.forms import ActionForm
from webui.views import ROW_ID
from webui.views.auth import actor, role_required
from webui.views.overview import page_cursor

bp = Blueprint("alarms", __name__)


def _filters() -> dict:
    state = request.args.get("state", "open")
    if state not in ("open", "all", *queries.ALARM_STATES):
        state = "open"
    device = request.args.get("device", "").strip()[:64]
    return {"state": state, "device": device}


def alarms_context() -> dict:
    f = _filters()
    rows = queries.alarms(
        get_db(),
        state=None if f["state"] == "all" else f["state"],
        device_id=f["device"] or None,
    )
    return {"alarms": rows, "filters": f, "now": now(), "form": ActionForm()}


@bp.route("/alarms")
def index():
    return render_template(
        "alarms.html",
        cursor=page_cursor(get_db()),
        **alarms_context(),
    )


@bp.route("/fragments/alarms")
def fragment():
    return render_template("_alarms_table.html", **alarms_context())


@bp.route(f"/alarms/<{ROW_ID}:alarm_id>/acknowledge", methods=["POST"])
@role_required("operator")
def acknowledge(alarm_id: int):
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400)
    if get_db().execute("SELECT 1 FROM alarms WHERE id = ?", (alarm_id,)).fetchone() is None:
        abort(404)
    with write() as conn:
        done = edge_alarms.acknowledge(conn, alarm_id, by=actor(), now=now())
        if done:
            audit.record(
                conn,
                actor=actor(),
                action="alarm.acknowledge",
                target=str(alarm_id),
                now=now(),
            )
    flash(
        f"Alarm {alarm_id} acknowledged."
        if done
        else f"Alarm {alarm_id} was already acknowledged or cleared."
    )
    return redirect(url_for("alarms.index"))
