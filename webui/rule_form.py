"""The rule editor's form, and the mapping between its fields and a rule definition (edge.rules).

The form only collects typed values; edge.rules.validate_rule is the one judge of what a rule may be.
Its ValidationError names a definition field ("above", "action.args.seconds", "devices[1]"), which
:func:`form_field_for` turns back into the form field to show the message next to.
"""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, FloatField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from edge.alarms import SEVERITIES
from edge.rules import KINDS
from webui.forms import WholeNumberField

KIND_LABELS = {
    "threshold": "threshold (a value above or below a limit)",
    "rate": "rate of change",
    "silent": "module silent",
    "battery": "battery low",
    "link_down": "serial link down",
    "cloud_down": "cloud sync down",
    "buffer": "buffer filling up",
}
ACTION_COMMANDS = [
    SelectChoice("", "no action"),
    SelectChoice("set_output", "set an output"),
    SelectChoice("set_interval", "set the sampling interval"),
    SelectChoice("request_status", "request status"),
    SelectChoice("reboot", "reboot"),
]


class NumberField(FloatField):
    """A decimal number; absurdly long input is refused before it is parsed."""

    def process_formdata(self, valuelist):
        if valuelist and len(str(valuelist[0]).strip()) > 24:
            self.data = None
            raise ValueError("Enter a number of at most 24 characters.")
        if valuelist and not str(valuelist[0]).strip():
            self.data = None
            return
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError("Enter a number, e.g. 8 or 7.5.") from None


class RuleForm(FlaskForm):
    name = StringField("Name", [DataRequired(message="Enter a name."), Length(max=64)])
    kind = SelectField("Kind", choices=[SelectChoice(k, KIND_LABELS[k]) for k in KINDS])
    severity = SelectField("Severity", choices=[SelectChoice(s, s) for s in SEVERITIES], default="warning")
    message = StringField("Message ($rule $device $value $metric $limit)", [Optional(), Length(max=200)])
    enabled = BooleanField("Enabled", default=True)
    devices = StringField("Modules (ids separated by spaces or commas; empty: every module)", [Optional()])
    metric = StringField("Value name (e.g. temperature)", [Optional(), Length(max=64)])
    channel = WholeNumberField("Channel (empty: any)", [Optional()])
    above = NumberField("Above", [Optional()])
    below = NumberField("Below", [Optional()])
    hysteresis = NumberField("Hysteresis", [Optional()])
    for_s = NumberField("For at least (seconds)", [Optional()])
    max_rate = NumberField("Largest change (rate rules)", [Optional()])
    per_s = NumberField("Per (seconds, rate rules)", [Optional()])
    direction = SelectField(
        "Direction (rate rules)",
        choices=[SelectChoice("", "—"), *(SelectChoice(d, d) for d in ("rise", "fall", "any"))],
        default="",
    )
    intervals = NumberField("Silent for (intervals)", [Optional()])
    port = StringField("Serial port (link rules; empty: any)", [Optional(), Length(max=200)])
    sink = StringField("Sink (cloud rules; empty: any)", [Optional(), Length(max=200)])
    action_command = SelectField("Downlink when raised", choices=ACTION_COMMANDS, default="")
    action_output = WholeNumberField("Output number", [Optional()])
    action_value = SelectField(
        "Output value",
        choices=[SelectChoice("", "—"), SelectChoice("0", "off (0)"), SelectChoice("1", "on (1)")],
        default="",
    )
    action_seconds = WholeNumberField("Interval (seconds)", [Optional()])
    action_device = StringField("To module (empty: the alarm's module)", [Optional(), Length(max=16)])
    action_cooldown_s = NumberField("Cooldown (seconds; default 3600)", [Optional()])

    def definition(self) -> dict[str, Any]:
        """The rule definition the fields describe: only what was filled in. Not validated here."""
        d: dict[str, Any] = {
            "name": (self.name.data or "").strip(),
            "kind": self.kind.data,
            "severity": self.severity.data,
            "enabled": bool(self.enabled.data),
        }
        if self.message.data:
            d["message"] = self.message.data
        devices = [part for part in re.split(r"[\s,]+", self.devices.data or "") if part]
        if devices:
            d["devices"] = devices
        for key in ("metric", "port", "sink", "direction"):
            value = (getattr(self, key).data or "").strip()
            if value:
                d[key] = value
        for key in ("channel", "above", "below", "hysteresis", "for_s", "max_rate", "per_s", "intervals"):
            value = getattr(self, key).data
            if value is not None:
                d[key] = value
        if self.action_command.data:
            d["action"] = self._action()
        return d

    def _action(self) -> dict[str, Any]:
        command = self.action_command.data
        args: dict[str, Any] = {}
        if command == "set_output":
            if self.action_output.data is not None:
                args["output"] = self.action_output.data
            if self.action_value.data in ("0", "1"):
                args["value"] = int(self.action_value.data)
        elif command == "set_interval" and self.action_seconds.data is not None:
            args["seconds"] = self.action_seconds.data
        action: dict[str, Any] = {"command": command, "args": args}
        if (self.action_device.data or "").strip():
            action["device"] = self.action_device.data.strip()
        if self.action_cooldown_s.data is not None:
            action["cooldown_s"] = self.action_cooldown_s.data
        return action

    @classmethod
    def from_definition(cls, definition: dict[str, Any], **kwargs) -> RuleForm:
        """A form showing a stored rule (for editing)."""
        values: dict[str, Any] = {
            key: definition[key]
            for key in (
                "name",
                "kind",
                "severity",
                "message",
                "metric",
                "channel",
                "above",
                "below",
                "hysteresis",
                "for_s",
                "max_rate",
                "per_s",
                "direction",
                "intervals",
                "port",
                "sink",
            )
            if key in definition
        }
        values["enabled"] = definition.get("enabled", True)
        values["devices"] = " ".join(definition.get("devices", []))
        action = definition.get("action")
        if action:
            args = action.get("args", {})
            values.update(
                action_command=action.get("command", ""),
                action_output=args.get("output"),
                action_value="" if args.get("value") is None else str(args["value"]),
                action_seconds=args.get("seconds"),
                action_device=action.get("device", ""),
                action_cooldown_s=action.get("cooldown_s"),
            )
        return cls(formdata=None, data=values, **kwargs)


# Definition fields (as edge.rules names them in errors) -> the form field that shows the message.
_ACTION_FIELDS = {
    "action": "action_command",
    "action.command": "action_command",
    "action.args": "action_command",
    "action.args.output": "action_output",
    "action.args.value": "action_value",
    "action.args.seconds": "action_seconds",
    "action.device": "action_device",
    "action.cooldown_s": "action_cooldown_s",
}


def form_field_for(form: RuleForm, error_field: str):
    """The form field a ValidationError's ``field`` is about (None: no single field; show it on top)."""
    if error_field in _ACTION_FIELDS:
        return getattr(form, _ACTION_FIELDS[error_field])
    base = error_field.split("[", 1)[0]  # devices[2] -> devices
    field = getattr(form, base, None)
    if base in form._fields and field is not None:
        return field
    return None
