"""The application factory: config, extensions, blueprints, security headers."""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFError, CSRFProtect

from edge.codecs import CodecRunner
from edge.errors import ConfigError
from edge.store import connect, migrate
from edge.store.numbers import Numbers
from webui import accounts, db, formatting

log = logging.getLogger("fieldpost.webui")

DEFAULTS: dict[str, Any] = {
    "DATABASE": None,
    "CLOCK": time.time,
    "DB_TIMEOUT_S": 5.0,
    "MIGRATE": True,
    # Forms and API bodies are small; anything bigger is refused with 413 before it is parsed.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "MAX_FORM_MEMORY_SIZE": 64 * 1024,
    # Wrong passwords per client address and typed name before each next one doubles a wait, and the
    # longest wait (webui/throttle.py): a guesser slows down, no account is ever locked.
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_LOCKOUT_S": 900.0,
    "LOGIN_RATE_LIMIT": "20 per minute",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_NAME": "fieldpost_session",
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    "WTF_CSRF_TIME_LIMIT": None,  # valid for the session's life; the session itself expires
    "TLS_CERT": None,
    "TLS_KEY": None,
    "SETUP_CODE": None,
    "SSE_POLL_S": 1.0,
    "SSE_MAX_S": 55.0,  # a stream ends and the browser reconnects, so no worker is held forever
    "ONLINE_INTERVALS": 3,  # a module is online when heard within this many of its intervals
    "RADIO_SF": 12,
    "RADIO_BW_HZ": 125_000,
    "DUTY_CYCLE_LIMIT": 0.01,  # EU868 sub-band g: 1 %
    "EXPORT_MAX_DAYS": 366,
}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the panel. ``test_config`` (or the daemon's mapping) overrides DEFAULTS; DATABASE is required
    (or the FIELDPOST_DB environment variable)."""
    if test_config is not None and hasattr(test_config, "section") and hasattr(test_config, "edge"):
        from webui.config import from_edge_config  # the daemon's edge.config.Config

        test_config = from_edge_config(test_config).flask
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    if os.environ.get("FIELDPOST_DB"):
        app.config["DATABASE"] = os.environ["FIELDPOST_DB"]
    if test_config:
        app.config.update(test_config)
    if not app.config["DATABASE"]:
        raise ConfigError("panel: DATABASE (path of the SQLite buffer) is not set")
    app.config["DATABASE"] = str(app.config["DATABASE"])
    if "SESSION_COOKIE_SECURE" not in (test_config or {}):
        app.config["SESSION_COOKIE_SECURE"] = bool(app.config["TLS_CERT"])
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _load_or_create_secret(Path(app.config["DATABASE"] + ".panel-secret"))

    _prepare_database(app)

    CSRFProtect(app)
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", headers_enabled=True)
    app.extensions["fieldpost_limiter"] = limiter
    # Set when the server shuts down: live-update streams end at once instead of holding workers.
    app.extensions["fieldpost_stopping"] = threading.Event()
    # Decoding readings for the pages: one codec runner (its plug-in worker starts on first use)
    # and one cache of device numbers for every request.
    app.extensions["fieldpost_codecs"] = CodecRunner()
    app.extensions["fieldpost_codecs_owned"] = True
    app.extensions["fieldpost_numbers"] = Numbers()

    from webui.views import (
        account,
        alarms,
        api,
        auth,
        devices,
        export,
        health,
        manage,
        meta,
        notifications,
        overview,
        rules,
        settings,
        sync,
    )

    limiter.limit(lambda: app.config["LOGIN_RATE_LIMIT"], methods=["POST"])(auth.bp)
    for blueprint in (
        auth.bp,
        account.bp,
        overview.bp,
        manage.bp,
        health.bp,
        meta.bp,
        notifications.bp,
        devices.bp,
        alarms.bp,
        rules.bp,
        sync.bp,
        settings.bp,
        export.bp,
        api.bp,
    ):
        app.register_blueprint(blueprint)
    app.extensions["csrf"].exempt(api.bp)  # bearer tokens, never cookies: nothing to forge

    app.teardown_appcontext(db.close_db)
    app.after_request(_security_headers)
    _error_pages(app)
    formatting.register(app)
    return app


def _prepare_database(app: Flask) -> None:
    conn = connect(app.config["DATABASE"], timeout=app.config["DB_TIMEOUT_S"])
    try:
        if app.config["MIGRATE"]:
            try:
                migrate(conn)
            except sqlite3.IntegrityError:
                # The daemon migrated at the same moment; its result is the same schema.
                migrate(conn)
        if accounts.count_users(conn) == 0 and not app.config["SETUP_CODE"]:
            app.config["SETUP_CODE"] = _write_setup_code(Path(app.config["DATABASE"] + ".setup-code"))
    finally:
        conn.close()


def _write_setup_code(path: Path) -> str:
    """The first-run page asks for this code, so only someone with the appliance's console or disk
    can create the first admin. There is no default password."""
    code = secrets.token_hex(4)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(code + "\n")
    log.warning(
        "event=first_run setup_code=%s file=%s msg='open the panel and create the admin'",
        code,
        path,
    )
    return code


def _load_or_create_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return secret


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _error_pages(app: Flask) -> None:
    from webui.views.api import api_error, is_api_request

    def page(status: int, title: str, message: str):
        if is_api_request():
            return api_error(status, title.lower().replace(" ", "_"), message)
        return render_template("error.html", status=status, title=title, message=message), status

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return page(
            400,
            "Form expired",
            "The form was missing its security token or it expired. Go back, reload the page and try again.",
        )

    @app.errorhandler(400)
    def bad_request(exc):
        return page(
            400,
            "Bad request",
            getattr(exc, "description", "") or "The request was not understood.",
        )

    def fixed_page(status: int, title: str, message: str) -> None:
        """An error page that reads the same whatever raised the error."""
        app.register_error_handler(status, lambda _exc: page(status, title, message))

    fixed_page(401, "Log in first", "This needs a signed-in user.")
    fixed_page(403, "Not allowed", "Your role does not allow this.")
    fixed_page(404, "Not found", "There is nothing here.")
    fixed_page(413, "Too large", "The request body is larger than the panel accepts.")
    fixed_page(429, "Too many attempts", "Too many requests; wait a minute and try again.")

    @app.errorhandler(405)
    def method_not_allowed(exc):
        body, status = page(405, "Method not allowed", "This address does not take that method.")
        response = app.make_response((body, status))
        if getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response
