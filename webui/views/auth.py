"""Log in, log out, first run; the gate every request passes; role checks."""

from __future__ import annotations

import functools
import hmac
import logging

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from edge.errors import ValidationError
from webui import accounts, audit
from webui.db import get_db, now, write
from webui.forms import LoginForm, SetupForm

log = logging.getLogger("fieldpost.webui.auth")
bp = Blueprint("auth", __name__)

# Reachable without a session. The API authenticates by bearer token in its own blueprint.
PUBLIC_ENDPOINTS = {"auth.login", "auth.setup", "static", "api.openapi"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Fetched by scripts, not navigated to: without a session they answer 401 instead of redirecting.
DATA_ENDPOINTS = {
    "overview.fragment",
    "overview.events",
    "devices.fragment",
    "devices.series",
    "alarms.fragment",
}


@bp.before_app_request
def gate():
    g.user = None
    endpoint = request.endpoint or ""
    if endpoint.startswith("api.") or endpoint == "static":
        return None
    user = _session_user()
    if user is not None:
        g.user = user
        if request.method not in SAFE_METHODS and user["role"] == "viewer" and endpoint != "auth.logout":
            abort(403)  # a viewer changes nothing, whatever the route
        return None
    if endpoint in PUBLIC_ENDPOINTS:
        return None
    if not endpoint:
        abort(404)
    if request.method in SAFE_METHODS and endpoint not in DATA_ENDPOINTS:
        return redirect(
            url_for(
                "auth.login",
                next=request.full_path if request.query_string else request.path,
            )
        )
    abort(401)


def _session_user():
    uid = session.get("uid")
    if uid is None:
        return None
    user = accounts.get_user(get_db(), uid)
    if user is None or user["disabled"] or session.get("stamp") != accounts.session_stamp(user):
        session.clear()
        return None
    return user


def role_required(role: str):
    """Refuse (403) unless the signed-in user has at least ``role``."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if g.user is None or not accounts.has_rank(g.user["role"], role):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def actor() -> str:
    return g.user["username"] if g.user is not None else "anonymous"


def _safe_next(target: str | None) -> str:
    # Only same-site paths: never an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("overview.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    conn = get_db()
    if accounts.count_users(conn) == 0:
        return redirect(url_for("auth.setup"))
    if g.user is not None:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        error = _check_login(form.username.data, form.password.data)
        if error is None:
            return redirect(_safe_next(request.args.get("next")))
    status = 401 if request.method == "POST" else 200
    return render_template("login.html", form=form, error=error), status


def _check_login(username: str, password: str) -> str | None:
    """Sign in or return the message to show. Every failure looks the same to the client."""
    cfg = current_app.config
    t = now()
    generic = "Wrong user name or password."
    user = accounts.find_user(get_db(), username)
    if user is None or user["disabled"]:
        accounts.burn_verify_time(password)
        return generic
    if accounts.is_locked(user, t):
        accounts.burn_verify_time(password)
        return "Too many failed attempts: this account is locked for a while."
    if not accounts.verify_password(user["password_hash"], password):
        with write() as conn:
            locked = accounts.record_failed_login(
                conn,
                user,
                now=t,
                max_failures=cfg["LOGIN_MAX_FAILURES"],
                lockout_s=cfg["LOGIN_LOCKOUT_S"],
            )
            if locked:
                audit.record(
                    conn,
                    actor=user["username"],
                    action="user.locked",
                    target=user["username"],
                    detail={
                        "remote": request.remote_addr,
                        "seconds": cfg["LOGIN_LOCKOUT_S"],
                    },
                    now=t,
                )
        log.warning(
            "event=login_failed user=%s remote=%s locked=%s",
            user["username"],
            request.remote_addr,
            locked,
        )
        return generic
    with write() as conn:
        accounts.record_successful_login(conn, user)
        user = accounts.get_user(conn, user["id"]) or user
    session.clear()
    session.permanent = True
    session["uid"] = user["id"]
    session["stamp"] = accounts.session_stamp(user)
    log.info("event=login user=%s remote=%s", user["username"], request.remote_addr)
    return None


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """First run: create the admin. Only while no user exists, and only with the setup code."""
    if accounts.count_users(get_db()) > 0:
        return redirect(url_for("auth.login"))
    form = SetupForm()
    if form.validate_on_submit():
        expected = current_app.config["SETUP_CODE"] or ""
        if not hmac.compare_digest(form.setup_code.data.strip().encode(), expected.encode()):
            form.setup_code.errors = ["This is not the setup code."]
        else:
            try:
                with write() as conn:
                    if accounts.count_users(conn) > 0:  # someone else finished first
                        return redirect(url_for("auth.login"))
                    uid = accounts.create_user(
                        conn, form.username.data, form.password.data, "admin", now=now()
                    )
                    audit.record(
                        conn,
                        actor=form.username.data,
                        action="user.create",
                        target=form.username.data,
                        detail={"role": "admin", "first_run": True},
                        now=now(),
                    )
                    user = accounts.get_user(conn, uid)
            except ValidationError as exc:
                getattr(form, exc.field).errors = [exc.message]
            else:
                session.clear()
                session.permanent = True
                session["uid"] = uid
                session["stamp"] = accounts.session_stamp(user)
                return redirect(url_for("overview.index"))
    status = 400 if request.method == "POST" else 200
    return render_template("setup.html", form=form), status
