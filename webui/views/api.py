"""JSON API under /api/v1, authenticated by per-user bearer tokens (never by the session cookie).

Every response is JSON; errors are {"error": code, "message": text[, "field": name]}. The OpenAPI
document at /api/openapi.json (webui/openapi.py) describes exactly these routes; a schemathesis test
holds the two together.
"""

from __future__ import annotations

import functools
import math

from flask import Blueprint, abort, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from edge.errors import ValidationError
from webui import accounts, audit, openapi, queries
from webui.db import get_db, get_reader, now, write
from webui.edge_adapters import alarms as edge_alarms
from webui.edge_adapters import downlinks, sync_status
from webui.views import ROW_ID

bp = Blueprint("api", __name__)
API_PREFIX = "/api/"
TOKEN_TOUCH_S = 60.0  # last_used is refreshed at most this often, to keep API reads read-only


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIX)


def api_error(status: int, code: str, message: str, field: str | None = None):
    body = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="fieldpost"'
    return response


@bp.errorhandler(ValidationError)
def validation_error(exc: ValidationError):
    return api_error(400, "validation", exc.message, exc.field)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    return api_error(
        exc.code or 500,
        (exc.name or "error").lower().replace(" ", "_"),
        exc.description or exc.name,
    )


@bp.before_request
def authenticate():
    if request.endpoint == "api.openapi":
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return api_error(401, "unauthorized", "Send 'Authorization: Bearer <token>'.")
    user = accounts.user_for_token(get_db(), token.strip())
    if user is None:
        return api_error(401, "unauthorized", "Unknown or revoked token.")
    g.user = user
    last_used = user_last_used(user["token_id"])
    if last_used is None or now() - last_used > TOKEN_TOUCH_S:
        with write() as conn:
            conn.execute(
                "UPDATE api_tokens SET last_used = ? WHERE id = ?",
                (now(), user["token_id"]),
            )
    return None


def user_last_used(token_id: int) -> float | None:
    return get_db().execute("SELECT last_used FROM api_tokens WHERE id = ?", (token_id,)).fetchone()[0]


def needs(role: str):
    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if not accounts.has_rank(g.user["role"], role):
                return api_error(403, "forbidden", f"This needs the {role} role.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _device_or_404(device_id: str):
    device = queries.get_device(get_db(), device_id)
    if device is None:
        abort(404, description=f"No device {device_id!r}.")
    return device


def _number_arg(name: str, default: float) -> float:
    text = request.args.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValidationError(name, "must be a number (Unix seconds)") from None
    if not math.isfinite(value):
        raise ValidationError(name, "must be a finite number")
    return value


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    text = request.args.get(name)
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValidationError(name, f"must be an integer from {low} to {high}")
    return int(text)


def openapi_document():
    return jsonify(openapi.document())


bp.add_url_rule("/api/openapi.json", endpoint="openapi", view_func=openapi_document)


@bp.route("/api/v1/me")
def me():
    return jsonify({"username": g.user["username"], "role": g.user["role"]})


@bp.route("/api/v1/devices")
def devices():
    t = now()
    rows = queries.devices_overview(get_reader(), t, current_app.config["ONLINE_INTERVALS"])
    return jsonify({"devices": rows})


@bp.route("/api/v1/devices/<device_id>")
def device(device_id: str):
    row = _device_or_404(device_id)
    d = queries.device_dict(row)
    d["online"] = queries.is_online(row, now(), current_app.config["ONLINE_INTERVALS"])
    reader = get_reader()
    d["latest"] = queries.latest_values(reader, device_id)
    d["battery_v"] = queries.battery_v(reader, device_id, d["latest"])
    return jsonify(d)


@bp.route("/api/v1/devices/<device_id>/readings")
def readings(device_id: str):
    _device_or_404(device_id)
    t = now()
    start = _number_arg("start", t - 86400)
    end = _number_arg("end", t + 1)
    limit = _int_arg("limit", 500, 1, 5000)
    after = _int_arg("after_id", 0, 0, 2**62)
    reader = get_reader()
    rows = queries.readings(reader, device_id, start=start, end=end, limit=limit, after_id=after)
    return jsonify({"readings": [queries.reading_dict(reader, r) for r in rows], "limit": limit})


@bp.route("/api/v1/devices/<device_id>/series")
def series(device_id: str):
    _device_or_404(device_id)
    window = request.args.get("window", "24h")
    if window not in queries.WINDOWS:
        raise ValidationError("window", "must be 24h or 7d")
    return jsonify(queries.series(get_reader(), device_id, window_s=queries.WINDOWS[window], now=now()))


@bp.route("/api/v1/devices/<device_id>/downlinks", methods=["GET"])
def list_downlinks(device_id: str):
    _device_or_404(device_id)
    return jsonify({"downlinks": queries.downlinks_for(get_db(), device_id, limit=100)})


@bp.route("/api/v1/devices/<device_id>/downlinks", methods=["POST"])
@needs("operator")
def queue_downlink(device_id: str):
    _device_or_404(device_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("body", "must be a JSON object")
    extra = set(body) - {"command", "args", "ttl_s"}
    if extra:
        raise ValidationError(min(extra), "is not a field of a downlink request")
    command = body.get("command")
    if not isinstance(command, str):
        raise ValidationError("command", "must be a string")
    args = body.get("args", {})
    ttl_s = body.get("ttl_s", 86400)
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, (int, float)) or not math.isfinite(ttl_s):
        raise ValidationError("ttl_s", "must be a number of seconds")
    t = now()
    with write() as conn:
        dl_id = downlinks.queue(conn, device_id, command, args, source="panel", ttl_s=ttl_s, now=t)
        audit.record(
            conn,
            actor=g.user["username"],
            action="downlink.queue",
            target=device_id,
            detail={"downlink": dl_id, "command": command, "args": args, "via": "api"},
            now=t,
        )
    row = get_db().execute("SELECT * FROM downlinks WHERE id = ?", (dl_id,)).fetchone()
    response = jsonify(queries.downlink_dict(row))
    response.status_code = 201
    return response


@bp.route("/api/v1/alarms")
def alarms():
    state = request.args.get("state", "open")
    if state not in ("open", "all", *queries.ALARM_STATES):
        raise ValidationError("state", "must be open, all, raised, acknowledged or cleared")
    device_id = request.args.get("device")
    limit = _int_arg("limit", 200, 1, 1000)
    rows = queries.alarms(
        get_db(),
        state=None if state == "all" else state,
        device_id=device_id,
        limit=limit,
    )
    return jsonify({"alarms": [dict(r) for r in rows]})


@bp.route(f"/api/v1/alarms/<{ROW_ID}:alarm_id>/acknowledge", methods=["POST"])
@needs("operator")
def acknowledge(alarm_id: int):
    conn = get_db()
    if conn.execute("SELECT 1 FROM alarms WHERE id = ?", (alarm_id,)).fetchone() is None:
        abort(404, description=f"No alarm {alarm_id}.")
    t = now()
    with write() as conn:
        done = edge_alarms.acknowledge(conn, alarm_id, by=g.user["username"], now=t)
        if done:
            audit.record(
                conn,
                actor=g.user["username"],
                action="alarm.acknowledge",
                target=str(alarm_id),
                detail={"via": "api"},
                now=t,
            )
    row = conn.execute("SELECT * FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
    return jsonify({"acknowledged": done, "alarm": dict(row)})


@bp.route("/api/v1/sync")
def sync():
    status = sync_status(get_db(), now())
    return jsonify(status)


@bp.route("/api/v1/quarantine")
def quarantine():
    rows = []
    for r in queries.quarantine(get_db()):
        d = dict(r)
        d["last_frame"] = bytes(d["last_frame"]).hex() if d["last_frame"] is not None else None
        rows.append(d)
    return jsonify({"quarantine": rows})


@bp.route("/api/v1/rules")
def rules():
    from edge.rules import list_rules

    return jsonify(
        {
            "rules": [
                {
                    "id": r.id,
                    "name": r.name,
                    "source": r.source,
                    "enabled": r.enabled,
                    "definition": r.definition,
                    "created_at": r.created_at,
                    "updated_at": r.updated_at,
                }
                for r in list_rules(get_db())
            ]
        }
    )
