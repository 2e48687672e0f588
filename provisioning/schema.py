"""JSON Schema checks for the data files under hardware/ (board profiles, the Pi GPIO map).

The schemas live in hardware/schema/; a document that fails is reported as a
ValidationError naming the offending field as a dotted path (``radio.pins.cs``),
so a profile author sees exactly which pin is missing.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

from edge.assets import asset_dir
from edge.errors import ValidationError

# The repository root, in a checkout (docs/ and the data folders sit next to the Python packages).
REPO_ROOT = Path(__file__).resolve().parents[1]
# hardware/: the checkout's, or the copy an installed wheel carries (edge.assets)
HARDWARE_DIR = asset_dir("hardware")
SCHEMA_DIR = HARDWARE_DIR / "schema"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """The schema ``hardware/schema/<name>.schema.json``, checked against its metaschema."""
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def field_of(error: jsonschema.ValidationError) -> str:
    """Dotted path of the field an error is about; for a missing key, the key itself."""
    path = [str(part) for part in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        if missing:
            path.append(missing[0])
    return ".".join(path) or "<document>"


def schema_errors(document: Any, schema_name: str) -> list[tuple[str, str]]:
    """Every (field, message) the schema finds wrong, in document order."""
    validator = jsonschema.Draft202012Validator(load_schema(schema_name))
    errors = sorted(validator.iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path])
    return [(field_of(err), err.message) for err in errors]


def validate_document(document: Any, schema_name: str, *, source: str = "") -> None:
    """Raise ValidationError(field, message) for the first problem; the message lists the rest."""
    problems = schema_errors(document, schema_name)
    if not problems:
        return
    field, message = problems[0]
    where = f"{source}: " if source else ""
    more = (
        f" (and {len(problems) - 1} more: {', '.join(f for f, _ in problems[1:])})"
        if len(problems) > 1
        else ""
    )
    raise ValidationError(field, f"{where}{message}{more}")


def load_json(path: Path, schema_name: str) -> dict[str, Any]:
    """Read a JSON data file and validate it; bad JSON is a ValidationError too."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError("<document>", f"{path}: not valid JSON: {exc}") from None
    validate_document(document, schema_name, source=str(path))
    return document
