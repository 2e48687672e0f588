"""Forms (Flask-WTF: every POST form carries a CSRF token). Messages show next to their field."""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import (
    URL,
    DataRequired,
    EqualTo,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
)
from wtforms.validators import ValidationError as FieldError

from edge.config.schema import bounds
from edge.errors import ConfigError, ValidationError
from edge.store.retention import RetentionSection
from edge.sync.panel_settings import parse_endpoint
from webui.accounts import MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, ROLES


def show_error(form: FlaskForm, exc: ValidationError, fallback) -> None:
    """Show a ValidationError from the edge next to the form field it names, or on ``fallback`` when the
    form has no field of that name (the edge's names are not always the form's)."""
    field = getattr(form, exc.field, None)
    (field if field is not None else fallback).errors = [exc.message]


class WholeNumberField(IntegerField):
    """An integer field that refuses absurdly long input before WTForms turns it into a float."""

    def process_formdata(self, valuelist):
        if valuelist and len(str(valuelist[0]).strip()) > 12:
            self.data = None
            raise ValueError("Enter a whole number of at most 12 digits.")
        try:
            super().process_formdata(valuelist)
        except ValueError:
            raise ValueError("Enter a whole number.") from None


ROLE_CHOICES = [SelectChoice(role, role) for role in ROLES]
PASSWORD_LENGTH = Length(
    min=MIN_PASSWORD_LEN,
    max=MAX_PASSWORD_LEN,
    message=f"Use at least {MIN_PASSWORD_LEN} characters (at most {MAX_PASSWORD_LEN}).",
)
PASSWORD = [DataRequired(message="Enter a password."), PASSWORD_LENGTH]


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class LoginForm(FlaskForm):
    username = StringField("User name", [DataRequired(), Length(max=32)])
    password = PasswordField("Password", [DataRequired(), Length(max=MAX_PASSWORD_LEN)])


class TotpForm(FlaskForm):
    code = StringField("Code from your authenticator app", [DataRequired(), Length(max=10)])


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", [DataRequired(), Length(max=MAX_PASSWORD_LEN)])
    password = PasswordField("New password", PASSWORD)
    confirm = PasswordField(
        "New password again", [DataRequired(), EqualTo("password", "The passwords differ.")]
    )


class SetupForm(FlaskForm):
    setup_code = StringField("Setup code (printed in the log and in the .setup-code file)", [DataRequired()])
    username = StringField(
        "Admin user name",
        [
            DataRequired(),
            Regexp(
                r"^[A-Za-z0-9_.@-]{1,32}$",
                message="Use 1 to 32 letters, digits or . _ @ -",
            ),
        ],
    )
    password = PasswordField("Password", PASSWORD)
    confirm = PasswordField("Password again", [DataRequired(), EqualTo("password", "The passwords differ.")])


DOWNLINK_COMMANDS = [
    SelectChoice("set_interval", "Set sampling interval"),
    SelectChoice("set_output", "Set output"),
    SelectChoice("request_status", "Request status"),
    SelectChoice("reboot", "Reboot"),
]


class DownlinkForm(FlaskForm):
    command = SelectField("Command", choices=DOWNLINK_COMMANDS)
    seconds = WholeNumberField("Interval (seconds, 10 to 86400)", [Optional()])
    output = WholeNumberField("Output number", [Optional()])
    value = SelectField(
        "Output value",
        choices=[
            SelectChoice("", "—"),
            SelectChoice("0", "off (0)"),
            SelectChoice("1", "on (1)"),
        ],
        default="",
    )

    def args(self) -> dict:
        """The command's arguments; edge.downlinks validates ranges and names the field on error."""
        command = self.command.data
        if command == "set_interval":
            if self.seconds.data is None:
                self.seconds.errors = ["Enter the interval in seconds."]
                return {}
            return {"seconds": self.seconds.data}
        if command == "set_output":
            missing = False
            if self.output.data is None:
                self.output.errors = ["Enter the output number."]
                missing = True
            if self.value.data not in ("0", "1"):
                self.value.errors = ["Choose on or off."]
                missing = True
            return {} if missing else {"output": self.output.data, "value": int(self.value.data)}
        return {}


class AdoptForm(FlaskForm):
    key = StringField(
        "Device key (32 hex digits, from provisioning)",
        [
            DataRequired(),
            Regexp(r"^\s*[0-9a-fA-F]{32}\s*$", message="Enter 32 hex digits."),
        ],
    )
    name = StringField("Name", [Optional(), Length(max=64)])


class DeleteDataForm(FlaskForm):
    confirm = StringField("Type the device id to confirm", [DataRequired()])

    def __init__(self, device_id: str, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._device_id = device_id

    def validate_confirm(self, field):
        if field.data.strip().lower() != self._device_id:
            raise FieldError("This is not the device id; nothing was deleted.")


# A host name (labels of letters, digits and inner hyphens), an IPv4 address or a bracketed IPv6
# address; then an optional port and, for https, a path of URL characters (no quotes, no <>).
HOST_RE = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)"
ENDPOINT_RE = re.compile(
    r"^(mqtts?|https)://" + HOST_RE + r"(:(\d{1,5}))?(/[A-Za-z0-9._~!$&()*+,;=:@%/-]*)?$"
)


class CloudForm(FlaskForm):
    endpoint = StringField(
        "Cloud endpoint (mqtts://host:8883, mqtt://host or https://host/path)",
        [Optional(), Length(max=300)],
    )

    def validate_endpoint(self, field):
        match = ENDPOINT_RE.match(field.data.strip()) if field.data else None
        if field.data and not match:
            raise FieldError(
                "Use mqtt://, mqtts:// or https:// followed by a host name or address, an optional :port"
                " and (https) a path; quotes, spaces and angle brackets are not allowed."
            )
        if match and match.group(4) is not None and not 1 <= int(match.group(4)) <= 65535:
            raise FieldError(f"The port must be 1 to 65535, not {int(match.group(4))}.")
        if field.data and field.data.strip().startswith("https://"):
            URL(require_tld=False, message="Not a valid https URL.")(self, field)
        if field.data:
            # The sync service's own check (plaintext only to loopback, no path for MQTT), so the
            # panel never stores an endpoint that sync would ignore for its syntax.
            try:
                parse_endpoint(field.data.strip())
            except ConfigError as exc:
                raise FieldError(str(exc).split(": ", 1)[-1]) from None


# The panel's retention settings stand for [retention] keys: their ranges come from that schema.
_MAX_AGE_DAYS = bounds(RetentionSection, "max_age_days")[1] or 36500
_MAX_DB_MB = int(bounds(RetentionSection, "max_db_bytes")[1] or 2**50) // (1024 * 1024)


class SiteForm(FlaskForm):
    timezone = StringField(
        "Site time zone (charts and times: e.g. Europe/Berlin, America/Chicago, UTC)",
        [DataRequired(message="Enter a time zone name."), Length(max=64)],
    )

    def validate_timezone(self, field):
        from webui.site_time import validate

        try:
            field.data = validate(field.data)
        except ValidationError as exc:
            raise FieldError(exc.message) from None


class RetentionForm(FlaskForm):
    max_age_days = WholeNumberField(
        "Keep readings for (days)", [InputRequired(), NumberRange(1, int(_MAX_AGE_DAYS))]
    )
    max_db_mb = WholeNumberField(
        "Largest buffer size (MiB; empty: no size limit)",
        [Optional(), NumberRange(1, _MAX_DB_MB)],
    )


class UserForm(FlaskForm):
    username = StringField(
        "User name",
        [
            DataRequired(),
            Regexp(
                r"^[A-Za-z0-9_.@-]{1,32}$",
                message="Use 1 to 32 letters, digits or . _ @ -",
            ),
        ],
    )
    role = SelectField("Role", choices=ROLE_CHOICES, default="viewer")
    password = PasswordField("Password", PASSWORD)


class UserEditForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
    disabled = BooleanField("Disabled")
    password = PasswordField("New password (leave empty to keep)", [Optional(), PASSWORD_LENGTH])


class TokenForm(FlaskForm):
    user_id = SelectField("For user", coerce=int, choices=[])
    name = StringField("Token name", [DataRequired(), Length(max=64)])


DEVICE_ID_RE = r"^\s*([0-9a-fA-F]{16})?\s*$"
KEY_RE = r"^\s*([0-9a-fA-F]{32})?\s*$"


class DeviceAddForm(FlaskForm):
    device_id = StringField(
        "Module id (16 hex digits; empty: make one)",
        [Optional(), Regexp(DEVICE_ID_RE, message="Enter 16 hex digits, or leave it empty.")],
    )
    key = StringField(
        "Key (32 hex digits; empty: make one)",
        [Optional(), Regexp(KEY_RE, message="Enter 32 hex digits, or leave it empty.")],
    )
    name = StringField("Name", [Optional(), Length(max=64)])
    role = SelectField("Role", choices=[SelectChoice("node", "node"), SelectChoice("bridge", "bridge")])
    board = SelectField("Board profile", choices=[])
    # Cayenne LPP, what Fieldpost nodes send, unless the operator picks another (the list is sorted)
    codec = SelectField("Codec", choices=[], default="lpp")
    interval_s = WholeNumberField(
        "Sampling interval (seconds, 10 to 86400)", [InputRequired(), NumberRange(10, 86400)], default=300
    )


class DeviceEditForm(FlaskForm):
    name = StringField("Name", [Optional(), Length(max=64)])
    board = SelectField("Board profile", choices=[])
    codec = SelectField("Codec", choices=[])
    interval_s = WholeNumberField(
        "Sampling interval (seconds, 10 to 86400)", [InputRequired(), NumberRange(10, 86400)]
    )
    send_interval = BooleanField("Also send the new interval to the module (a downlink)", default=True)


SEVERITY_CHOICES = [SelectChoice(s, s) for s in ("info", "warning", "critical")]


class NotifyTargetForm(FlaskForm):
    name = StringField("Name", [DataRequired(message="Give the target a name."), Length(max=64)])
    kind = SelectField("Kind", choices=[])
    destination = StringField(
        "Where to (URL for a webhook, address for e-mail)", [DataRequired(), Length(max=2000)]
    )
    rule = StringField("Only alarms of rule (empty: every rule)", [Optional(), Length(max=100)])
    min_severity = SelectField("From severity", choices=SEVERITY_CHOICES, default="warning")


class NotifyRouteForm(FlaskForm):
    rule = StringField("Rule (empty: every rule)", [Optional(), Length(max=100)])
    min_severity = SelectField("From severity", choices=SEVERITY_CHOICES, default="warning")


class ModuleUpdateForm(FlaskForm):
    """Start a firmware update (edge/fuota/updates.py, as `fieldpost modules update`): reviewed
    first (the packages and the estimate), queued once ``confirmed``. The choices are filled per
    request; a value not among them gets the field's own message, not WTForms' generic one."""

    target = SelectField("Update", choices=[], validate_choice=False)
    version = SelectField("To the kept firmware version", choices=[], validate_choice=False)
    max_in_flight = WholeNumberField(
        "Nodes: at most this many updates under way at once (empty: no limit)",
        [Optional(), NumberRange(1, 1000, message="Enter a whole number from 1 to 1000, or leave it empty.")],
    )
    dr = WholeNumberField(
        "Nodes: data rate the estimate assumes (0: the slowest)",
        [InputRequired(message="Enter a data rate from 0 to 15."), NumberRange(0, 15)],
        default=0,
    )
    full = BooleanField("Send every file, not a delta")
    confirmed = HiddenField(default="")

    def validate_target(self, field):
        if not field.data or field.data not in {c.value for c in field.choices}:
            raise FieldError("Pick a module, or every module of a board, to update.")

    def validate_version(self, field):
        if not field.data or field.data not in {c.value for c in field.choices}:
            raise FieldError("Pick a firmware version the edge keeps (fieldpost firmware keep).")
