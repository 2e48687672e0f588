"""Notification targets and routes made in the panel (tables ``notify_targets`` and
``notify_routes``), as :class:`edge.notify.Target` entries the notifier plans with, next to the
config file's ``[notify]`` targets.

A target row names its transport (``kind``) and the transport's settings (JSON); each route says
which alarms go to it: one rule (or every rule, NULL) from a minimum severity on. Targets of a kind
the notifier cannot deliver (a transport added later, a disabled one) are left out here, so an
unknown row never turns into a wrong delivery.
"""

from __future__ import annotations

import json
import sqlite3
from glob import escape as glob_escape

from edge.notify import Target

# kind -> the settings key holding where it goes (the notifications row's ``target``)
DELIVERABLE = {"webhook": "url", "email": "address"}


def destination(kind: str, settings: dict) -> str | None:
    key = DELIVERABLE.get(kind)
    value = settings.get(key) if key else None
    return value if isinstance(value, str) and value else None


def panel_targets(conn: sqlite3.Connection) -> list[Target]:
    out = []
    for row in conn.execute(
        "SELECT t.kind, t.settings, r.rule, r.min_severity FROM notify_routes r"
        " JOIN notify_targets t ON t.id = r.target_id WHERE t.enabled = 1 ORDER BY r.id"
    ):
        try:
            settings = json.loads(row["settings"])
        except ValueError:
            continue
        where = destination(row["kind"], settings if isinstance(settings, dict) else {})
        if where is None:
            continue
        # a route names one rule (the panel lists rule names; a name is its own exact pattern)
        rules = (glob_escape(row["rule"]),) if row["rule"] else ()
        out.append(Target(row["kind"], where, row["min_severity"], rules=rules))
    return out
