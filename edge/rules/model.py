"""Rule definitions: the data a rule is made of, and the one validator for it.

A rule is plain data (a TOML ``[[rules]]`` table or the panel's JSON), never code:
the validator accepts only the fields listed here, with the types listed here, so
nothing a user types can run. Every refusal is a ValidationError naming the field.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import asdict, dataclass
from typing import Any

from edge import downlinks  # its validator is the one definition of a valid command
from edge.alarms import SEVERITIES
from edge.errors import ValidationError

KINDS = ("threshold", "rate", "silent", "battery", "link_down", "cloud_down", "buffer")
# Kinds whose alarms belong to one device (and so may act on that device by default).
DEVICE_KINDS = ("threshold", "rate", "silent", "battery")
DIRECTIONS = ("rise", "fall", "any")
ACTION_ON = ("raised", "cleared")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,63}$")
DEVICE_RE = re.compile(r"^[0-9a-f]{16}$")
MESSAGE_FIELDS = ("rule", "device", "value", "metric", "limit")
MAX_MESSAGE = 200

COMMON = {"name", "kind", "severity", "message", "enabled", "devices", "action"}
PER_KIND = {
    "threshold": {"metric", "channel", "above", "below", "hysteresis", "for_s"},
    "rate": {"metric", "channel", "max_rate", "per_s", "direction", "for_s"},
    "silent": {"intervals"},
    "battery": {"metric", "below", "hysteresis", "for_s"},
    "link_down": {"port", "for_s"},
    "cloud_down": {"sink", "for_s"},
    "buffer": {"above", "hysteresis", "for_s"},
}
ACTION_FIELDS = {"command", "args", "device", "cooldown_s", "ttl_s", "on"}


@dataclass(frozen=True)
class Action:
    """A downlink the rule queues when its alarm is raised (or cleared), at most once per cooldown."""

    command: str
    args: dict[str, Any]
    device: str | None = None  # None: the device the alarm is about
    cooldown_s: float = 3600.0
    ttl_s: float = 3600.0
    on: str = "raised"


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    severity: str = "warning"
    message: str = ""
    enabled: bool = True
    devices: tuple[str, ...] = ()  # empty: every device
    metric: str = ""
    channel: int | None = None
    above: float | None = None
    below: float | None = None
    hysteresis: float = 0.0
    for_s: float = 0.0
    max_rate: float = 0.0
    per_s: float = 60.0
    direction: str = "any"
    intervals: float = 3.0
    port: str | None = None
    sink: str | None = None
    action: Action | None = None

    def applies_to(self, device_id: str) -> bool:
        return not self.devices or device_id in self.devices

    def to_definition(self) -> dict[str, Any]:
        """The normalised JSON stored in rules.definition: only the fields this kind uses."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "severity": self.severity}
        if self.message:
            out["message"] = self.message
        if not self.enabled:
            out["enabled"] = False
        if self.devices:
            out["devices"] = list(self.devices)
        for key in sorted(PER_KIND[self.kind]):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.action is not None:
            action = asdict(self.action)
            if action["device"] is None:
                del action["device"]
            out["action"] = action
        return out


def validate_rule(definition: Any, *, prefix: str = "") -> Rule:
    """Check one rule definition (a dict from TOML or JSON) and return the Rule.

    ``prefix`` is put before field names in errors, e.g. ``rules[2].`` for the
    config file, so the message says where the bad value is.
    """

    def fail(name: str, message: str) -> ValidationError:
        return ValidationError(prefix + name, message)

    if not isinstance(definition, dict):
        raise fail("rule" if not prefix else prefix.rstrip("."), "must be a table/object")
    d = dict(definition)
    name = d.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise fail(
            "name", "required: 1-64 letters, digits, space, '_', '.', '-', starting with a letter/digit"
        )
    kind = d.get("kind")
    if kind not in KINDS:
        raise fail("kind", f"must be one of {', '.join(KINDS)}")
    unknown = sorted(set(d) - COMMON - PER_KIND[kind])
    if unknown:
        raise fail(unknown[0], f"is not a field of a {kind} rule")

    values: dict[str, Any] = {"name": name, "kind": kind}
    severity = d.get("severity", "warning")
    if severity not in SEVERITIES:
        raise fail("severity", f"must be one of {', '.join(SEVERITIES)}")
    values["severity"] = severity
    values["message"] = _message(d.get("message", ""), fail)
    enabled = d.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("enabled", "must be true or false")
    values["enabled"] = enabled
    values["devices"] = _devices(d.get("devices", []), fail)

    if kind in ("threshold", "rate", "battery"):
        default_metric = "battery" if kind == "battery" else None
        metric = d.get("metric", default_metric)
        if not isinstance(metric, str) or not metric.strip() or len(metric) > 64:
            raise fail("metric", "required: the name of a decoded value, e.g. 'temperature'")
        values["metric"] = metric
    if "channel" in d:
        values["channel"] = _number(d, "channel", fail, integer=True, low=0, high=255)
    if "for_s" in d:
        values["for_s"] = _number(d, "for_s", fail, low=0, high=30 * 86400)
    if "hysteresis" in d:
        values["hysteresis"] = _number(d, "hysteresis", fail, low=0)

    if kind == "threshold":
        if ("above" in d) == ("below" in d):
            raise fail("above", "give exactly one of 'above' or 'below'")
        bound = "above" if "above" in d else "below"
        values[bound] = _number(d, bound, fail)
    elif kind == "battery":
        if "below" not in d:
            raise fail("below", "required: the voltage under which the battery is low")
        values["below"] = _number(d, "below", fail, low=0, high=100)
    elif kind == "buffer":
        if "above" not in d:
            raise fail("above", "required: a fill level in percent")
        values["above"] = _number(d, "above", fail, low=0, high=100, open_high=True, open_low=True)
        if values.get("hysteresis", 0) >= values["above"]:
            raise fail("hysteresis", "must be smaller than 'above'")
    elif kind == "rate":
        if "max_rate" not in d:
            raise fail("max_rate", "required: the largest allowed change per 'per_s' seconds")
        values["max_rate"] = _number(d, "max_rate", fail, low=0, open_low=True)
        if "per_s" in d:
            values["per_s"] = _number(d, "per_s", fail, low=0, open_low=True, high=86400)
        direction = d.get("direction", "any")
        if direction not in DIRECTIONS:
            raise fail("direction", f"must be one of {', '.join(DIRECTIONS)}")
        values["direction"] = direction
    elif kind == "silent":
        if "intervals" in d:
            values["intervals"] = _number(d, "intervals", fail, low=1, high=10000)
    elif kind in ("link_down", "cloud_down"):
        if "for_s" not in d:
            raise fail("for_s", "required: how long it must be down, in seconds")
        key = "port" if kind == "link_down" else "sink"
        if key in d:
            if not isinstance(d[key], str) or not d[key] or len(d[key]) > 200:
                raise fail(key, "must be a non-empty string")
            values[key] = d[key]

    if "action" in d:
        values["action"] = _action(d["action"], kind, fail)
    return Rule(**values)


def _message(value: Any, fail) -> str:
    if not isinstance(value, str) or len(value) > MAX_MESSAGE:
        raise fail("message", f"must be text of at most {MAX_MESSAGE} characters")
    # $name placeholders only (string.Template): no attribute access, no format specs, no code.
    names = set()
    for match in string.Template.pattern.finditer(value):
        if match.group("invalid") is not None:
            raise fail("message", "a '$' must start a placeholder; write '$$' for a dollar sign")
        names.add(match.group("named") or match.group("braced"))
    bad = sorted(n for n in names if n and n not in MESSAGE_FIELDS)
    if bad:
        raise fail(
            "message", f"unknown placeholder ${bad[0]}; use {', '.join('$' + f for f in MESSAGE_FIELDS)}"
        )
    return value


def _devices(value: Any, fail) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise fail("devices", "must be a list of device ids")
    out = []
    for i, dev in enumerate(value):
        if not isinstance(dev, str) or not DEVICE_RE.match(dev.lower()):
            raise fail(f"devices[{i}]", "must be a device id of 16 hex digits")
        out.append(dev.lower())
    return tuple(out)


def _number(d, key, fail, *, integer=False, low=None, high=None, open_low=False, open_high=False):
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(key, "must be a number")
    if integer and value != int(value):
        raise fail(key, "must be a whole number")
    if low is not None and (value < low or (open_low and value == low)):
        raise fail(key, f"must be {'above' if open_low else 'at least'} {low}")
    if high is not None and (value > high or (open_high and value == high)):
        raise fail(key, f"must be {'below' if open_high else 'at most'} {high}")
    return int(value) if integer else float(value)


def _action(value: Any, kind: str, fail) -> Action:
    if not isinstance(value, dict):
        raise fail("action", "must be a table/object with 'command' and 'args'")
    unknown = sorted(set(value) - ACTION_FIELDS)
    if unknown:
        raise fail(f"action.{unknown[0]}", "is not a field of an action")
    args = value.get("args", {})
    try:
        clean = downlinks.validate(value.get("command"), args)
    except ValidationError as exc:
        where = (
            "command" if exc.field == "command" else ("args" if exc.field == "args" else f"args.{exc.field}")
        )
        raise fail(f"action.{where}", exc.message) from exc
    device = value.get("device")
    if device is not None:
        if not isinstance(device, str) or not DEVICE_RE.match(device.lower()):
            raise fail("action.device", "must be a device id of 16 hex digits")
        device = device.lower()
    elif kind not in DEVICE_KINDS:
        raise fail("action.device", f"required: a {kind} alarm is not about one device")
    on = value.get("on", "raised")
    if on not in ACTION_ON:
        raise fail("action.on", f"must be one of {', '.join(ACTION_ON)}")

    def action_fail(name: str, message: str) -> ValidationError:
        return fail(f"action.{name}", message)

    cooldown_s = (
        _number(value, "cooldown_s", action_fail, low=0, high=30 * 86400) if "cooldown_s" in value else 3600.0
    )
    ttl_s = (
        _number(value, "ttl_s", action_fail, low=0, open_low=True, high=30 * 86400)
        if "ttl_s" in value
        else 3600.0
    )
    return Action(
        command=value["command"], args=clean, device=device, on=on, cooldown_s=cooldown_s, ttl_s=ttl_s
    )


def parse_rules(tables: Any) -> list[Rule]:
    """Validate the config file's ``[[rules]]`` array; errors name ``rules[i].field``.

    Names must be unique across the file.
    """
    if tables is None:
        return []
    if not isinstance(tables, list):
        raise ValidationError("rules", "must be an array of tables ([[rules]])")
    rules, seen = [], set()
    for i, table in enumerate(tables):
        rule = validate_rule(table, prefix=f"rules[{i}].")
        if rule.name in seen:
            raise ValidationError(f"rules[{i}].name", f"{rule.name!r} is used by an earlier rule")
        seen.add(rule.name)
        rules.append(rule)
    return rules
