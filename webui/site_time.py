"""The site's time zone (a panel setting): charts and custom ranges read times in it."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from edge.errors import ValidationError
from webui import settings_store

KEY = "site.timezone"
DEFAULT = "UTC"


def validate(name: str) -> str:
    """A IANA zone name ("Europe/Berlin"); raises ValidationError naming the field otherwise."""
    name = (name or "").strip()
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise ValidationError("timezone", "Enter a time zone name such as Europe/Berlin or UTC.")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            "timezone", f"Unknown time zone {name!r}: use a name such as Europe/Berlin."
        ) from None
    return name


def zone_name(conn: sqlite3.Connection) -> str:
    name = settings_store.get(conn, KEY, DEFAULT)
    try:
        return validate(name)
    except ValidationError:
        return DEFAULT


def parse_local(text: str, zone: str) -> float:
    """A ``YYYY-MM-DDTHH:MM`` (a datetime-local input) in the site's zone -> Unix seconds."""
    try:
        local = datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise ValidationError("start", f"{text!r} is not a date and time like 2026-12-01T08:00.") from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=ZoneInfo(zone))
    return local.timestamp()
