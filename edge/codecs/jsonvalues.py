"""The ``json`` codec: a payload that is a UTF-8 JSON object of numbers and text, as devices with
factory firmware often send (``{"temperature": 21.5, "door": "open"}``). Nested objects are
flattened with dots (``{"env": {"t": 1}}`` -> ``env.t``); lists and nulls are not values."""

from __future__ import annotations

import json
import math
from typing import Any


class JsonPayloadError(ValueError):
    """A payload that is not a JSON object of numbers and text; the message names the key."""


MAX_DEPTH = 4


def decode(payload: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(bytes(payload).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise JsonPayloadError(f"payload is not UTF-8: {exc}") from None
    except ValueError as exc:
        raise JsonPayloadError(f"payload is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise JsonPayloadError(f"payload is a JSON {type(doc).__name__}, expected an object")
    out: list[dict[str, Any]] = []
    _flatten(doc, "", out, 0)
    return out


def _flatten(doc: dict, prefix: str, out: list[dict[str, Any]], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise JsonPayloadError(f"{prefix.rstrip('.')}: nested deeper than {MAX_DEPTH}")
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", out, depth + 1)
        elif isinstance(value, bool):
            out.append({"channel": 0, "name": name, "value": int(value), "unit": ""})
        elif isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                raise JsonPayloadError(f"{name}: not a finite number")
            out.append({"channel": 0, "name": name, "value": value, "unit": ""})
        elif isinstance(value, str):
            out.append({"channel": 0, "name": name, "value": value, "unit": ""})
        elif value is None or isinstance(value, list):
            continue
