"""Notifications (admin): targets, their routes (rule and minimum severity), "send test", and the
delivery history of the notifier's queue (the ``notifications`` table)."""

from __future__ import annotations

import json
import smtplib
import urllib.error

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from wtforms import SelectChoice

from edge.errors import DeliveryError, ValidationError
from edge.notify import Notifier, NotifyConfig
from edge.notify_routes import destination
from webui import audit, notify_targets
from webui.db import get_db, now, write
from webui.forms import ActionForm, NotifyRouteForm, NotifyTargetForm, show_error
from webui.views import ROW_ID
from webui.views.auth import actor, role_required

bp = Blueprint("notifications", __name__)
TEST_TIMEOUT_S = 5.0


@bp.before_request
@role_required("admin")
def admin_only():
    return None


def _target_form(formdata=None):
    form = NotifyTargetForm(formdata=formdata) if formdata is None else NotifyTargetForm()
    form.kind.choices = [SelectChoice(k, notify_targets.LABELS[k]) for k in notify_targets.CHECKS]
    return form


def _page(status: int = 200, **forms):
    conn = get_db()
    return (
        render_template(
            "notifications.html",
            targets=notify_targets.listing(conn),
            deliveries=notify_targets.deliveries(conn),
            target_form=forms.get("target_form") or _target_form(),
            route_form=NotifyRouteForm(formdata=None),
            action_form=ActionForm(formdata=None),
            route_errors=forms.get("route_errors"),
            now=now(),
        ),
        status,
    )


@bp.route("/notifications")
def index():
    return _page()


@bp.route("/notifications/targets", methods=["POST"])
def add_target():
    form = NotifyTargetForm()
    form.kind.choices = [SelectChoice(k, notify_targets.LABELS[k]) for k in notify_targets.CHECKS]
    if not form.validate_on_submit():
        return _page(400, target_form=form)
    try:
        with write() as conn:
            target_id = notify_targets.create(
                conn,
                name=form.name.data,
                kind=form.kind.data,
                destination=form.destination.data,
                min_severity=form.min_severity.data,
                rule=form.rule.data,
                now=now(),
            )
            audit.record(
                conn,
                actor=actor(),
                action="notify.target_add",
                target=form.name.data.strip(),
                detail={"id": target_id, "kind": form.kind.data},
                now=now(),
            )
    except ValidationError as exc:
        show_error(form, exc, fallback=form.destination)
        return _page(400, target_form=form)
    flash(f"Target {form.name.data.strip()} added.")
    return redirect(url_for("notifications.index"))


def _target_or_404(target_id: int):
    row = get_db().execute("SELECT * FROM notify_targets WHERE id = ?", (target_id,)).fetchone()
    if row is None:
        abort(404)
    return row


@bp.route(f"/notifications/targets/<{ROW_ID}:target_id>/routes", methods=["POST"])
def add_route(target_id: int):
    target = _target_or_404(target_id)
    form = NotifyRouteForm()
    if not form.validate_on_submit():
        return _page(400, route_errors={target_id: [e for errs in form.errors.values() for e in errs]})
    try:
        with write() as conn:
            notify_targets.add_route(
                conn, target_id, rule=form.rule.data, min_severity=form.min_severity.data
            )
            audit.record(
                conn,
                actor=actor(),
                action="notify.route_add",
                target=target["name"],
                detail={"rule": form.rule.data or None, "min_severity": form.min_severity.data},
                now=now(),
            )
    except ValidationError as exc:
        return _page(400, route_errors={target_id: [exc.message]})
    flash(f"Route added to {target['name']}.")
    return redirect(url_for("notifications.index"))


@bp.route(f"/notifications/routes/<{ROW_ID}:route_id>/delete", methods=["POST"])
def delete_route(route_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    with write() as conn:
        row = conn.execute(
            "SELECT r.*, t.name FROM notify_routes r JOIN notify_targets t ON t.id = r.target_id WHERE r.id = ?",
            (route_id,),
        ).fetchone()
        if row is None:
            abort(404)
        conn.execute("DELETE FROM notify_routes WHERE id = ?", (route_id,))
        audit.record(
            conn,
            actor=actor(),
            action="notify.route_delete",
            target=row["name"],
            detail={"rule": row["rule"], "min_severity": row["min_severity"]},
            now=now(),
        )
    return redirect(url_for("notifications.index"))


@bp.route(f"/notifications/targets/<{ROW_ID}:target_id>/toggle", methods=["POST"])
def toggle(target_id: int):
    target = _target_or_404(target_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    enabled = 0 if target["enabled"] else 1
    with write() as conn:
        conn.execute(
            "UPDATE notify_targets SET enabled = ?, updated_at = ? WHERE id = ?", (enabled, now(), target_id)
        )
        audit.record(
            conn,
            actor=actor(),
            action="notify.target_update",
            target=target["name"],
            detail={"enabled": bool(enabled)},
            now=now(),
        )
    return redirect(url_for("notifications.index"))


@bp.route(f"/notifications/targets/<{ROW_ID}:target_id>/delete", methods=["POST"])
def delete_target(target_id: int):
    target = _target_or_404(target_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    with write() as conn:
        conn.execute("DELETE FROM notify_routes WHERE target_id = ?", (target_id,))
        conn.execute("DELETE FROM notify_targets WHERE id = ?", (target_id,))
        audit.record(conn, actor=actor(), action="notify.target_delete", target=target["name"], now=now())
    flash(f"Target {target['name']} deleted.")
    return redirect(url_for("notifications.index"))


@bp.route(f"/notifications/targets/<{ROW_ID}:target_id>/test", methods=["POST"])
def send_test(target_id: int):
    """Send a test message to the target now, through the edge's own transport."""
    target = _target_or_404(target_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        settings = json.loads(target["settings"])
    except ValueError:
        settings = {}
    where = destination(target["kind"], settings if isinstance(settings, dict) else {})
    if where is None:
        flash(f"{target['name']}: the panel cannot send a test for kind {target['kind']!r}.")
        return redirect(url_for("notifications.index"))
    config = current_app.extensions.get("fieldpost_notify_config") or NotifyConfig()
    notifier = Notifier(lambda: None, NotifyConfig(smtp=config.smtp, http_timeout_s=TEST_TIMEOUT_S))
    t = now()
    body = {
        "id": f"test:{target_id}:{int(t)}",
        "alarm": 0,
        "rule": "notification-test",
        "device": None,
        "severity": "info",
        "state": "test",
        "message": f"Test notification from the Fieldpost panel, sent by {actor()}.",
        "ts": t,
        "value": None,
    }
    try:
        notifier.send(target["kind"], where, body)
    except DeliveryError as exc:  # names the target and why (the transport's own words)
        outcome, ok = str(exc)[:300], False
    except (OSError, smtplib.SMTPException, urllib.error.URLError, ValueError) as exc:
        outcome, ok = f"{type(exc).__name__}: {exc}"[:300], False
    else:
        outcome, ok = "delivered", True
    with write() as conn:
        audit.record(
            conn,
            actor=actor(),
            action="notify.test",
            target=target["name"],
            detail={"ok": ok, "result": outcome},
            now=t,
        )
    flash(f"Test to {target['name']}: {outcome}.")
    return redirect(url_for("notifications.index"))
