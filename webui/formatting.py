"""Jinja filters: times in UTC, ages, numbers with units. Pure functions, registered on the app."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from flask import Flask


def utc(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def age(seconds: float | None) -> str:
    """A short human age: '42 s', '5 min', '3 h', '2 d'."""
    if seconds is None:
        return "—"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def number(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return str(value)


def size(num_bytes: int | None) -> str:
    if num_bytes is None:
        return "—"
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def hexbytes(blob: bytes | None) -> str:
    return blob.hex(" ") if blob else ""


def pretty_json(text: str | None) -> str:
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), sort_keys=True)
    except ValueError:
        return text


def register(app: Flask) -> None:
    app.add_template_filter(utc, "utc")
    app.add_template_filter(age, "age")
    app.add_template_filter(number, "number")
    app.add_template_filter(size, "size")
    app.add_template_filter(hexbytes, "hexbytes")
    app.add_template_filter(pretty_json, "pretty_json")
