"""Rows of a readings export, shared by `fieldpost db export` and the panel's export."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

VALUE_FIELDS = ("channel", "name", "value", "unit")


def csv_safe(value: Any) -> Any:
    # A text cell starting with = + - @ would run as a formula when the file is opened in a
    # spreadsheet; decoded names and units come from codecs, so they are not trusted.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def value_rows(head: Sequence[Any], values: list[dict], tail: Sequence[Any]) -> Iterator[list[Any]]:
    """One CSV row per decoded value, ``head + channel,name,value,unit + tail``.

    A reading with no values still gets one row, so its raw bytes are exported too.
    """
    for v in values or [{}]:
        yield [*head, *(csv_safe(v.get(field)) for field in VALUE_FIELDS), *tail]
