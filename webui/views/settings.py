"""Settings (admin only): cloud endpoint, retention, users, API tokens, and the audit log."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from wtforms import SelectChoice

from edge.errors import ValidationError
from webui import accounts, audit, settings_store, site_time
from webui.db import get_db, now, write
from webui.forms import (
    ActionForm,
    CloudForm,
    RetentionForm,
    SiteForm,
    TokenForm,
    UserEditForm,
    UserForm,
    show_error,
)
from webui.views import ROW_ID
from webui.views.auth import actor, role_required

bp = Blueprint("settings", __name__)


@bp.before_request
@role_required("admin")
def admin_only():
    return None


def _forms(**overrides) -> dict:
    conn = get_db()
    values = settings_store.all_panel(conn)
    users = accounts.list_users(conn)
    forms = {
        "cloud_form": CloudForm(formdata=None, endpoint=values["sync.endpoint"]),
        "retention_form": RetentionForm(
            formdata=None,
            max_age_days=values["retention.max_age_days"],
            max_db_mb=None
            if values["retention.max_db_bytes"] is None
            else values["retention.max_db_bytes"] // settings_store.MIB,
        ),
        "site_form": SiteForm(formdata=None, timezone=site_time.zone_name(conn)),
        "user_form": UserForm(formdata=None),
        "token_form": TokenForm(formdata=None),
        "action_form": ActionForm(formdata=None),
    }
    forms.update(overrides)
    forms["token_form"].user_id.choices = [SelectChoice(u["id"], u["username"]) for u in users]
    edit_forms = {}
    for u in users:
        edit_forms[u["id"]] = overrides.get("edit_forms", {}).get(u["id"]) or UserEditForm(
            formdata=None,
            role=u["role"],
            disabled=bool(u["disabled"]),
            prefix=f"u{u['id']}",
        )
    return {
        **forms,
        "edit_forms": edit_forms,
        "users": users,
        "tokens": accounts.list_tokens(conn),
        "now": now(),
        "new_token": None,
    }


def _page(status: int = 200, **overrides):
    context = _forms(**overrides)
    if "new_token" in overrides:
        context["new_token"] = overrides["new_token"]
    return render_template("settings.html", **context), status


@bp.route("/settings")
def index():
    return _page()


@bp.route("/settings/cloud", methods=["POST"])
def cloud():
    form = CloudForm()
    if not form.validate_on_submit():
        return _page(400, cloud_form=form)
    value = (form.endpoint.data or "").strip()
    with write() as conn:
        if not settings_store.is_stored(conn, "sync.endpoint") and value == "":
            flash("Nothing changed: the config file's endpoint applies.")
            return redirect(url_for("settings.index"))
        before = settings_store.put(conn, "sync.endpoint", value, by=actor(), now=now())
        audit.record(
            conn,
            actor=actor(),
            action="settings.update",
            target="sync.endpoint",
            detail={"from": before, "to": value},
            now=now(),
        )
    flash("Cloud endpoint saved (setting sync.endpoint).")
    return redirect(url_for("settings.index"))


@bp.route("/settings/site", methods=["POST"])
def site():
    form = SiteForm()
    if not form.validate_on_submit():
        return _page(400, site_form=form)
    with write() as conn:
        before = settings_store.put(conn, site_time.KEY, form.timezone.data, by=actor(), now=now())
        if before != form.timezone.data:
            audit.record(
                conn,
                actor=actor(),
                action="settings.update",
                target=site_time.KEY,
                detail={"from": before, "to": form.timezone.data},
                now=now(),
            )
    flash(f"Site time zone: {form.timezone.data}.")
    return redirect(url_for("settings.index"))


@bp.route("/settings/retention", methods=["POST"])
def retention():
    form = RetentionForm()
    if not form.validate_on_submit():
        return _page(400, retention_form=form)
    max_bytes = None if form.max_db_mb.data is None else form.max_db_mb.data * settings_store.MIB
    with write() as conn:
        for key, value in (
            ("retention.max_age_days", form.max_age_days.data),
            ("retention.max_db_bytes", max_bytes),
        ):
            if not settings_store.is_stored(conn, key) and value == settings_store.PANEL_KEYS[key]:
                continue  # the value shown and left as it was: no override of the config file
            before = settings_store.put(conn, key, value, by=actor(), now=now())
            if before != value:
                audit.record(
                    conn,
                    actor=actor(),
                    action="settings.update",
                    target=key,
                    detail={"from": before, "to": value},
                    now=now(),
                )
    flash("Retention saved (settings retention.max_age_days, retention.max_db_bytes).")
    return redirect(url_for("settings.index"))


@bp.route("/settings/users", methods=["POST"])
def add_user():
    form = UserForm()
    if form.validate_on_submit():
        try:
            with write() as conn:
                accounts.create_user(
                    conn,
                    form.username.data,
                    form.password.data,
                    form.role.data,
                    now=now(),
                )
                audit.record(
                    conn,
                    actor=actor(),
                    action="user.create",
                    target=form.username.data,
                    detail={"role": form.role.data},
                    now=now(),
                )
        except ValidationError as exc:
            show_error(form, exc, fallback=form.username)
        else:
            flash(f"User {form.username.data} created.")
            return redirect(url_for("settings.index"))
    return _page(400, user_form=form)


@bp.route(f"/settings/users/<{ROW_ID}:user_id>", methods=["POST"])
def edit_user(user_id: int):
    user = accounts.get_user(get_db(), user_id)
    if user is None:
        abort(404)
    form = UserEditForm(prefix=f"u{user_id}")
    if not form.validate_on_submit():
        return _page(400, edit_forms={user_id: form})
    if user_id == g.user["id"] and (form.role.data != "admin" or form.disabled.data):
        form.role.errors = ["You cannot demote or disable yourself; ask another admin."]
        return _page(400, edit_forms={user_id: form})
    changes = {}
    with write() as conn:
        if form.role.data != user["role"]:
            conn.execute("UPDATE users SET role = ? WHERE id = ?", (form.role.data, user_id))
            changes["role"] = [user["role"], form.role.data]
        if bool(form.disabled.data) != bool(user["disabled"]):
            accounts.set_disabled(conn, user_id, bool(form.disabled.data))
            changes["disabled"] = bool(form.disabled.data)
        if form.password.data:
            accounts.set_password(conn, user_id, form.password.data, now=now())
            changes["password"] = "reset"
        if changes:
            audit.record(
                conn,
                actor=actor(),
                action="user.update",
                target=user["username"],
                detail=changes,
                now=now(),
            )
    flash(f"User {user['username']} updated." if changes else "Nothing changed.")
    return redirect(url_for("settings.index"))


@bp.route("/settings/tokens", methods=["POST"])
def add_token():
    form = TokenForm()
    form.user_id.choices = [SelectChoice(u["id"], u["username"]) for u in accounts.list_users(get_db())]
    if form.validate_on_submit():
        try:
            with write() as conn:
                token_id, token = accounts.create_token(conn, form.user_id.data, form.name.data, now=now())
                owner = accounts.get_user(conn, form.user_id.data)["username"]
                audit.record(
                    conn,
                    actor=actor(),
                    action="token.create",
                    target=owner,
                    detail={"token": token_id, "name": form.name.data},
                    now=now(),
                )
        except ValidationError as exc:
            show_error(form, exc, fallback=form.name)
        else:
            # Shown once: only its hash is stored.
            return _page(200, new_token=token)
    return _page(400, token_form=form)


@bp.route(f"/settings/tokens/<{ROW_ID}:token_id>/revoke", methods=["POST"])
def revoke_token(token_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    with write() as conn:
        row = conn.execute("SELECT name, user_id FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
        if row is None:
            abort(404)
        conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))
        audit.record(
            conn,
            actor=actor(),
            action="token.revoke",
            target=str(token_id),
            detail={"name": row["name"], "user_id": row["user_id"]},
            now=now(),
        )
    flash("Token revoked.")
    return redirect(url_for("settings.index"))


@bp.route("/audit")
def audit_log():
    limit = request.args.get("limit", "200")
    limit = int(limit) if limit.isdigit() and 0 < int(limit) <= 5000 else 200
    return render_template("audit.html", entries=audit.recent(get_db(), limit))
