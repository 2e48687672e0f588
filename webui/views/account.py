"""My account, for every role: change my password, my sessions (revoke one, sign out everywhere),
and for admins the optional TOTP second factor."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, session, url_for

from edge.errors import ValidationError
from webui import accounts, audit, sessions, totp
from webui.db import get_db, now, write
from webui.forms import ActionForm, PasswordChangeForm, TotpForm
from webui.views.auth import actor, count_failure, throttled_answer

bp = Blueprint("account", __name__)
SESSION_KEY = "string(length=64)"


def _page(status: int = 200, **forms):
    user = g.user
    pending = session.get("totp_pending") if user["role"] == "admin" else None
    listed = sessions.list_for(get_db(), user["id"], now=now())
    return (
        render_template(
            "account.html",
            password_form=forms.get("password_form") or PasswordChangeForm(prefix="pw"),
            totp_form=forms.get("totp_form") or TotpForm(prefix="totp"),
            action_form=ActionForm(),
            sessions=listed,
            current_key=g.session.key if g.session is not None else None,
            describe_agent=sessions.describe_agent,
            totp_pending=pending,
            totp_uri=totp.provisioning_uri(pending, user["username"]) if pending else None,
        ),
        status,
    )


@bp.route("/account")
def index():
    return _page()


@bp.route("/account/password", methods=["POST"])
def change_password():
    form = PasswordChangeForm(prefix="pw")
    if not form.validate_on_submit():
        return _page(400, password_form=form)
    user = g.user
    # A stolen session must not become a way to guess the password: the same throttle as logins.
    blocked = throttled_answer(user["username"])
    if blocked is not None:
        form.current.errors = [blocked[0]]
        return _page(429, password_form=form)
    if not accounts.verify_password(user["password_hash"], form.current.data):
        count_failure(user["username"], reason="current_password")
        form.current.errors = ["This is not your current password."]
        return _page(400, password_form=form)
    try:
        with write() as conn:
            ended = accounts.set_password(
                conn, user["id"], form.password.data, now=now(), keep_session=session.get("sid")
            )
            audit.record(
                conn,
                actor=actor(),
                action="user.password_change",
                target=user["username"],
                detail={"sessions_ended": ended},
                now=now(),
            )
            fresh = accounts.get_user(conn, user["id"])
    except ValidationError as exc:
        form.password.errors = [exc.message]
        return _page(400, password_form=form)
    session["stamp"] = accounts.session_stamp(fresh)  # this session goes on; every other one ended
    flash(f"Password changed. {ended} other session(s) ended.")
    return redirect(url_for("account.index"))


@bp.route(f"/account/sessions/<{SESSION_KEY}:key>/revoke", methods=["POST"])
def revoke(key: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    with write() as conn:
        if not sessions.end_by_key(conn, g.user["id"], key):
            abort(404)
        audit.record(conn, actor=actor(), action="session.revoke", target=g.user["username"], now=now())
    if g.session is not None and key == g.session.key:
        session.clear()
        return redirect(url_for("auth.login"))
    flash("Session ended.")
    return redirect(url_for("account.index"))


@bp.route("/account/sessions/end-all", methods=["POST"])
def sign_out_everywhere():
    if not ActionForm().validate_on_submit():
        abort(400)
    with write() as conn:
        ended = sessions.end_all(conn, g.user["id"])
        audit.record(
            conn,
            actor=actor(),
            action="session.revoke_all",
            target=g.user["username"],
            detail={"sessions_ended": ended},
            now=now(),
        )
    session.clear()
    return redirect(url_for("auth.login"))


def _admin_only() -> None:
    if g.user["role"] != "admin":
        abort(403)


@bp.route("/account/totp/begin", methods=["POST"])
def totp_begin():
    _admin_only()
    if not ActionForm().validate_on_submit():
        abort(400)
    session["totp_pending"] = totp.new_secret()
    return redirect(url_for("account.index") + "#totp-h")


@bp.route("/account/totp/confirm", methods=["POST"])
def totp_confirm():
    _admin_only()
    form = TotpForm(prefix="totp")
    pending = session.get("totp_pending")
    if not pending:
        return redirect(url_for("account.index"))
    if not form.validate_on_submit():
        return _page(400, totp_form=form)
    if not totp.verify(pending, form.code.data, now=now()):
        form.code.errors = ["That code does not match: check the app's clock and use the current code."]
        return _page(400, totp_form=form)
    with write() as conn:
        conn.execute("UPDATE users SET totp_secret = ? WHERE id = ?", (pending, g.user["id"]))
        audit.record(conn, actor=actor(), action="user.totp_on", target=g.user["username"], now=now())
    session.pop("totp_pending", None)
    flash("Second factor on: the next login asks for a code.")
    return redirect(url_for("account.index"))


@bp.route("/account/totp/off", methods=["POST"])
def totp_off():
    _admin_only()
    form = TotpForm(prefix="totp")
    if not form.validate_on_submit() or not totp.verify(g.user["totp_secret"], form.code.data, now=now()):
        form.code.errors = ["Enter the current code from your app to turn the second factor off."]
        return _page(400, totp_form=form)
    with write() as conn:
        conn.execute("UPDATE users SET totp_secret = NULL WHERE id = ?", (g.user["id"],))
        audit.record(conn, actor=actor(), action="user.totp_off", target=g.user["username"], now=now())
    flash("Second factor off.")
    return redirect(url_for("account.index"))
