"""Log in (password, then a TOTP code for admins who turned it on), log out, first run; the gate
every request passes; role checks."""

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
from webui import accounts, audit, sessions, throttle, totp
from webui.db import get_db, now, write
from webui.forms import LoginForm, SetupForm, TotpForm
from webui.safe_redirect import safe_next

log = logging.getLogger("fieldpost.webui.auth")
bp = Blueprint("auth", __name__)

# Reachable without a session. The API authenticates by bearer token in its own blueprint.
PUBLIC_ENDPOINTS = {
    "auth.login",
    "auth.login_code",
    "auth.setup",
    "static",
    "api.openapi",
    "meta.favicon",
    "meta.manifest",
}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Fetched by scripts, not navigated to: without a session they answer 401 instead of redirecting.
DATA_ENDPOINTS = {
    "overview.fragment",
    "overview.events",
    "devices.fragment",
    "devices.series",
    "alarms.fragment",
}
GENERIC_FAILURE = "Wrong user name or password."
# A password accepted, the code not yet given: this long to type it.
CODE_WAIT_S = 300.0


@bp.before_app_request
def gate():
    g.user = None
    g.session = None
    endpoint = request.endpoint or ""
    if endpoint.startswith("api.") or endpoint == "static":
        return None
    user = _session_user()
    if user is not None:
        g.user = user
        if request.method not in SAFE_METHODS and user["role"] == "viewer" and endpoint not in VIEWER_POSTS:
            abort(403)  # a viewer changes nothing but their own account, whatever the route
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


# What a viewer may POST: only about their own sign-in.
VIEWER_POSTS = {
    "auth.logout",
    "account.change_password",
    "account.revoke",
    "account.sign_out_everywhere",
}


def _session_user():
    session_id = session.get("sid")
    if session_id is None:
        return None
    conn = get_db()
    t = now()
    info = sessions.lookup(conn, session_id, now=t)
    user = accounts.get_user(conn, info.user_id) if info is not None else None
    if user is None or user["disabled"] or session.get("stamp") != accounts.session_stamp(user):
        session.clear()
        return None
    if sessions.needs_touch(info, t):
        with write() as wconn:
            sessions.touch(wconn, info, now=t, address=request.remote_addr or "")
    g.session = info
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


def _next_target() -> str:
    return safe_next(request.args.get("next"), url_for("overview.index"))


def _policy() -> throttle.Policy:
    cfg = current_app.config
    return throttle.Policy(free=int(cfg["LOGIN_MAX_FAILURES"]), max_delay_s=float(cfg["LOGIN_LOCKOUT_S"]))


def throttled_answer(username: str) -> tuple[str, int] | None:
    """The page to answer while this address must wait before guessing ``username`` again."""
    wait = throttle.wait_s(get_db(), request.remote_addr or "", username, now=now())
    if wait <= 0:
        return None
    return f"Too many failed attempts from this address. Wait {int(wait) + 1} s and try again.", 429


def count_failure(username: str, *, reason: str) -> str:
    """Count a failed attempt for this address and typed name (the same whether the name exists)."""
    address = request.remote_addr or ""
    with write() as conn:
        delay = throttle.record_failure(conn, address, username, now=now(), policy=_policy())
    log.warning("event=login_failed reason=%s remote=%s delay_s=%.0f", reason, address, delay)
    return GENERIC_FAILURE


def _begin_session(user) -> None:
    """Sign ``user`` in: a fresh server-side session; the old cookie's content is dropped."""
    cfg = current_app.config
    t = now()
    with write() as conn:
        throttle.clear(conn, request.remote_addr or "", user["username"])
        session_id = sessions.start(
            conn,
            user["id"],
            now=t,
            lifetime_s=cfg["PERMANENT_SESSION_LIFETIME"].total_seconds(),
            address=request.remote_addr or "",
            user_agent=request.user_agent.string,
        )
        user = accounts.get_user(conn, user["id"])
    session.clear()
    session.permanent = True
    session["sid"] = session_id
    session["stamp"] = accounts.session_stamp(user)
    log.info("event=login user=%s remote=%s", user["username"], request.remote_addr)


@bp.route("/login", methods=["GET", "POST"])
def login():
    conn = get_db()
    if accounts.count_users(conn) == 0:
        return redirect(url_for("auth.setup"))
    if g.user is not None:
        return redirect(_next_target())
    form = LoginForm()
    error, status = None, 200
    if form.validate_on_submit():
        blocked = throttled_answer(form.username.data)
        if blocked is not None:
            error, status = blocked
        else:
            user = _check_password(form.username.data, form.password.data)
            if user is None:
                error, status = GENERIC_FAILURE, 401
            elif user["totp_secret"]:
                session.clear()
                session["mfa_uid"] = user["id"]
                session["mfa_at"] = now()
                return redirect(url_for("auth.login_code", next=request.args.get("next")))
            else:
                _begin_session(user)
                return redirect(_next_target())
    elif request.method == "POST":
        status = 401
    return render_template("login.html", form=form, error=error), status


def _check_password(username: str, password: str):
    """The user when the password is theirs; otherwise None, having spent the same time and written
    the same throttle row whether or not the name exists."""
    user = accounts.find_user(get_db(), username)
    if user is None or user["disabled"]:
        accounts.burn_verify_time(password)
        count_failure(username, reason="unknown_or_disabled")
        return None
    if not accounts.verify_password(user["password_hash"], password):
        count_failure(username, reason="password")
        return None
    return user


@bp.route("/login/code", methods=["GET", "POST"])
def login_code():
    """The second step for users with a TOTP secret."""
    uid, started = session.get("mfa_uid"), session.get("mfa_at")
    if uid is None or started is None or now() - float(started) > CODE_WAIT_S:
        session.pop("mfa_uid", None)
        return redirect(url_for("auth.login"))
    user = accounts.get_user(get_db(), uid)
    if user is None or user["disabled"] or not user["totp_secret"]:
        session.clear()
        return redirect(url_for("auth.login"))
    form = TotpForm()
    error, status = None, 200
    if form.validate_on_submit():
        blocked = throttled_answer(user["username"])
        if blocked is not None:
            error, status = blocked
        elif (step := _fresh_step(user, form.code.data)) is not None:
            with write() as conn:
                conn.execute("UPDATE users SET totp_last_step = ? WHERE id = ?", (step, user["id"]))
            _begin_session(user)
            return redirect(_next_target())
        else:
            count_failure(user["username"], reason="totp")
            error, status = "That code is not right. Use the current code from your app.", 401
    elif request.method == "POST":
        status = 401
    return render_template("login_code.html", form=form, error=error), status


def _fresh_step(user, code: str) -> int | None:
    """The step of a right code not used before (a replayed code counts as a wrong one)."""
    step = totp.accepted_step(user["totp_secret"], code, now=now())
    if step is None or (user["totp_last_step"] is not None and step <= user["totp_last_step"]):
        return None
    return step


@bp.route("/logout", methods=["POST"])
def logout():
    with write() as conn:
        sessions.end(conn, session.get("sid"))
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
                _begin_session(user)
                return redirect(url_for("overview.index"))
    status = 400 if request.method == "POST" else 200
    return render_template("setup.html", form=form), status
