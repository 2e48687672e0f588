"""Times typed into forms and query strings: ISO 8601 (UTC unless an offset is given) or Unix seconds."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from edge.errors import ValidationError

EARLIEST = 946684800.0  # 2000-01-01: nothing older was ever measured by a Fieldpost module
LATEST = 4102444800.0  # 2100-01-01


def parse_time(field: str, text: str | None) -> float:
    text = (text or "").strip()
    if not text:
        raise ValidationError(field, "Enter a time, e.g. 2026-01-31T08:00 (UTC).")
    if len(text) > 40:
        raise ValidationError(field, "Not a time.")
    try:
        value = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(field, "Not a time: use 2026-01-31T08:00 (UTC) or Unix seconds.") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        value = parsed.timestamp()
    if not math.isfinite(value) or not EARLIEST <= value <= LATEST:
        raise ValidationError(field, "Use a time between the years 2000 and 2100.")
    return value


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M")
