"""Notification targets and routes as the panel edits them (tables of migration 0009).

Kinds the panel can create are the transports the edge delivers (edge.notify_routes.DELIVERABLE);
each has one destination field, checked here. Rows of any other kind (a transport another part of
the edge adds) are listed with their settings and can be routed, enabled, disabled or deleted, but
not created or edited here. Callers own the transaction.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any
from urllib.parse import urlsplit

from edge.alarms import SEVERITIES
from edge.errors import ValidationError
from edge.notify_routes import DELIVERABLE

LABELS = {"webhook": "Webhook (HTTP POST of JSON)", "email": "E-mail"}
NAME_RE = re.compile(r"^[\w .@()-]{1,64}$")
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
HOST_RE = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)$"
)
URL_CHARS = re.compile(r"^[A-Za-z0-9._~!$&()*+,;=:@%/?#\[\]-]+$")


def check_url(url: str) -> str:
    url = (url or "").strip()
    if not url or len(url) > 2000 or not URL_CHARS.match(url):
        raise ValidationError("destination", "Enter an http:// or https:// URL without spaces, quotes or <>.")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValidationError("destination", "The URL must start with http:// or https://.")
    try:
        port = parts.port
    except ValueError:
        raise ValidationError("destination", "The port must be a number from 1 to 65535.") from None
    host = parts.hostname or ""
    if not HOST_RE.match(host if ":" not in host else f"[{host}]") or parts.username or parts.password:
        raise ValidationError("destination", f"{host or 'nothing'!r} is not a host name or address.")
    if port is not None and not 1 <= port <= 65535:
        raise ValidationError("destination", "The port must be a number from 1 to 65535.")
    return url


def check_email(address: str) -> str:
    address = (address or "").strip()
    if len(address) > 254 or not EMAIL_RE.match(address):
        raise ValidationError("destination", "Enter an e-mail address like ops@example.org.")
    return address


CHECKS = {"webhook": check_url, "email": check_email}


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name):
        raise ValidationError("name", "Use 1 to 64 letters, digits, spaces or . @ ( ) - _")
    return name


def check_severity(severity: str) -> str:
    if severity not in SEVERITIES:
        raise ValidationError("min_severity", f"Choose one of {', '.join(SEVERITIES)}.")
    return severity


def create(
    conn: sqlite3.Connection,
    *,
    name: str,
    kind: str,
    destination: str,
    min_severity: str,
    rule: str | None,
    now: float,
) -> int:
    if kind not in CHECKS:
        raise ValidationError("kind", f"Choose one of {', '.join(CHECKS)}.")
    name = check_name(name)
    where = CHECKS[kind](destination)
    check_severity(min_severity)
    if conn.execute("SELECT 1 FROM notify_targets WHERE name = ?", (name,)).fetchone():
        raise ValidationError("name", "A target of this name exists.")
    cur = conn.execute(
        "INSERT INTO notify_targets (name, kind, settings, enabled, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)",
        (name, kind, json.dumps({DELIVERABLE[kind]: where}), now, now),
    )
    add_route(conn, cur.lastrowid, rule=rule, min_severity=min_severity)
    return cur.lastrowid


def add_route(conn: sqlite3.Connection, target_id: int, *, rule: str | None, min_severity: str) -> int:
    check_severity(min_severity)
    rule = (rule or "").strip() or None
    if rule is not None and len(rule) > 100:
        raise ValidationError("rule", "A rule name has at most 100 characters.")
    cur = conn.execute(
        "INSERT INTO notify_routes (target_id, rule, min_severity) VALUES (?, ?, ?)",
        (target_id, rule, min_severity),
    )
    return cur.lastrowid


def listing(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    routes: dict[int, list[dict[str, Any]]] = {}
    for r in conn.execute("SELECT * FROM notify_routes ORDER BY id"):
        routes.setdefault(r["target_id"], []).append(dict(r))
    out = []
    for t in conn.execute("SELECT * FROM notify_targets ORDER BY name"):
        try:
            settings = json.loads(t["settings"])
        except ValueError:
            settings = {}
        key = DELIVERABLE.get(t["kind"])
        out.append(
            {
                **dict(t),
                "settings": settings,
                "destination": settings.get(key) if key and isinstance(settings, dict) else None,
                "known": t["kind"] in DELIVERABLE,
                "routes": routes.get(t["id"], []),
            }
        )
    return out


def deliveries(conn: sqlite3.Connection, limit: int = 100) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT n.*, a.rule, a.severity, a.device_id FROM notifications n LEFT JOIN alarms a ON a.id = n.alarm_id"
        " ORDER BY n.id DESC LIMIT ?",
        (limit,),
    ).fetchall()
