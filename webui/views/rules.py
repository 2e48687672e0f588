"""Rules: everyone signed in sees them; an admin creates, edits, enables, disables and deletes panel rules.

A rule is data validated by edge.rules (never code). Rules from the config file are shown read-only:
the next start of the daemon would undo a change made here. edge.rules' save functions write the
audit entry in the same transaction as the change, so this module does not audit again.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from edge import rules as edge_rules
from edge.errors import ValidationError
from webui.db import get_db, now, write
from webui.forms import ActionForm
from webui.rule_form import RuleForm, form_field_for
from webui.views import ROW_ID
from webui.views.auth import actor, role_required

bp = Blueprint("rules", __name__)


def _stored(rule_id: int) -> edge_rules.StoredRule:
    try:
        return edge_rules.get_rule(get_db(), rule_id)
    except ValidationError:
        abort(404)


def _read_only(rule: edge_rules.StoredRule):
    message = f"The rule {rule.name!r} comes from the config file; change it there."
    return render_template("error.html", status=409, title="Read-only rule", message=message), 409


@bp.route("/rules")
def index():
    return render_template("rules.html", rules=edge_rules.list_rules(get_db()), form=ActionForm())


def _editor(form: RuleForm, *, rule: edge_rules.StoredRule | None, status: int = 200, error: str = ""):
    return render_template("rule_form.html", form=form, rule=rule, error=error), status


def _save(form: RuleForm, rule: edge_rules.StoredRule | None):
    """Validate and store; on a refusal, the page again with the message next to its field."""
    if not form.validate_on_submit():
        return _editor(form, rule=rule, status=400)
    definition = form.definition()
    try:
        with write() as conn:
            rule_id = edge_rules.save_rule(
                conn, definition, actor=actor(), now=now(), rule_id=None if rule is None else rule.id
            )
    except ValidationError as exc:
        field = form_field_for(form, exc.field)
        if field is None:
            return _editor(form, rule=rule, status=400, error=f"{exc.field}: {exc.message}")
        message = exc.message
        action = definition.get("action") or {}
        if exc.field.startswith("action.args.") and exc.field.rsplit(".", 1)[1] not in action.get("args", {}):
            message = f"required for {action.get('command')}"  # left empty rather than of a wrong type
        field.errors = [*field.errors, message[:1].upper() + message[1:]]
        return _editor(form, rule=rule, status=400)
    flash(f"Rule {form.name.data.strip()} saved.")
    return redirect(url_for("rules.index", _anchor=f"rule-{rule_id}"))


@bp.route("/rules/new", methods=["GET", "POST"])
@role_required("admin")
def create():
    return (
        _save(RuleForm(), None) if request.method == "POST" else _editor(RuleForm(formdata=None), rule=None)
    )


@bp.route(f"/rules/<{ROW_ID}:rule_id>/edit", methods=["GET", "POST"])
@role_required("admin")
def edit(rule_id: int):
    rule = _stored(rule_id)
    if rule.source != "panel":
        return _read_only(rule)
    if request.method == "POST":
        return _save(RuleForm(), rule)
    definition = {**rule.definition, "enabled": rule.enabled}  # the switch lives in its own column
    return _editor(RuleForm.from_definition(definition), rule=rule)


def _change(rule_id: int, what: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    rule = _stored(rule_id)
    if rule.source != "panel":
        return _read_only(rule)
    with write() as conn:
        if what == "delete":
            edge_rules.delete_rule(conn, rule_id, actor=actor(), now=now())
        else:
            edge_rules.set_enabled(conn, rule_id, what == "enable", actor=actor(), now=now())
    flash(f"Rule {rule.name} {'deleted' if what == 'delete' else what + 'd'}.")
    return redirect(url_for("rules.index"))


@bp.route(f"/rules/<{ROW_ID}:rule_id>/enable", methods=["POST"])
@role_required("admin")
def enable(rule_id: int):
    return _change(rule_id, "enable")


@bp.route(f"/rules/<{ROW_ID}:rule_id>/disable", methods=["POST"])
@role_required("admin")
def disable(rule_id: int):
    return _change(rule_id, "disable")


@bp.route(f"/rules/<{ROW_ID}:rule_id>/delete", methods=["POST"])
@role_required("admin")
def delete(rule_id: int):
    return _change(rule_id, "delete")
