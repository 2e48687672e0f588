"""Batch provisioning manifests: a CSV file, one module per row."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from edge.errors import ValidationError
from provisioning.module import ModuleSpec

COLUMNS = ("port", "board", "role", "id", "name", "region", "dr", "interval")
REQUIRED = ("port", "board", "role")


def read_manifest(path: Path) -> list[tuple[int, ModuleSpec]]:
    """(line number, spec) per data row. Problems name the row and the column."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ValidationError(
                "manifest",
                f"{path}: missing column(s) {', '.join(missing)}; "
                f"columns are {', '.join(COLUMNS)} and settings as JSON in 'set'",
            )
        unknown = [c for c in header if c not in COLUMNS and c != "set"]
        if unknown:
            raise ValidationError("manifest", f"{path}: unknown column(s) {', '.join(unknown)}")
        rows = []
        for row in reader:
            line = reader.line_num
            values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
            if not any(values.values()):
                continue
            for column in REQUIRED:
                if not values.get(column):
                    raise ValidationError(f"row {line}.{column}", "is empty")
            rows.append(
                (
                    line,
                    ModuleSpec(
                        port=values["port"],
                        board=values["board"],
                        role=values["role"],
                        device_id=values.get("id") or None,
                        name=values.get("name", ""),
                        region=values.get("region") or None,
                        dr=_int(values, "dr", line),
                        interval=_int(values, "interval", line),
                        settings=_settings(values, line),
                    ),
                )
            )
    return rows


def _int(values: dict[str, str], column: str, line: int) -> int | None:
    text = values.get(column, "")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValidationError(f"row {line}.{column}", f"{text!r} is not a whole number") from None


def _settings(values: dict[str, str], line: int) -> dict:
    text = values.get("set", "")
    if not text:
        return {}
    try:
        settings = json.loads(text)
    except ValueError:
        raise ValidationError(f"row {line}.set", "is not a JSON object") from None
    if not isinstance(settings, dict):
        raise ValidationError(f"row {line}.set", "is not a JSON object")
    return settings
