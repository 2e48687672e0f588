"""The OpenAPI 3 document of /api/v1 (served at /api/openapi.json). Keep in step with views/api.py."""

from __future__ import annotations

from typing import Any

DEVICE_ID = {
    "type": "string",
    "pattern": "^[0-9a-f]{16}$",
    "description": "16 lower-case hex digits",
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


NUM = {"type": "number"}
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
# A JSON object whose keys the API does not fix (args, status, a sink's figures).
ANY_OBJECT = {"type": "object", "additionalProperties": True}


def _enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def _int_range(minimum: int, maximum: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


# The commands edge.downlinks.queue accepts; a Downlink row and a DownlinkRequest share them.
DOWNLINK_COMMAND = _enum("set_interval", "set_output", "request_status", "reboot", "config")

VALUE = {
    "type": "object",
    "properties": {"channel": INT, "name": STR, "value": {}, "unit": STR},
    "additionalProperties": True,
}
READING = {
    "type": "object",
    "required": ["id", "device_id", "fcnt", "port", "measured_at", "received_at", "raw", "values"],
    "properties": {
        "id": {
            **INT,
            "description": "the reading's key, (device number << 32) | fcnt: grows with fcnt; "
            "pass the last one of a page as after_id for the next",
        },
        "device_id": STR,
        "fcnt": INT,
        "port": INT,
        "measured_at": NUM,
        "received_at": NUM,
        "rssi": _nullable(INT),
        "snr": _nullable(NUM),
        "bridge_id": _nullable(STR),
        "raw": {"type": "string", "description": "application payload as hex"},
        "values": {"type": "array", "items": {"$ref": "#/components/schemas/Value"}},
        "decode_error": _nullable(STR),
    },
}
DEVICE = {
    "type": "object",
    "required": ["id", "name", "codec", "role", "interval_s", "online"],
    "properties": {
        "id": STR,
        "name": STR,
        "codec": STR,
        "board": STR,
        "role": _enum("node", "bridge"),
        "firmware": STR,
        "interval_s": INT,
        "last_fcnt": INT,
        "created_at": NUM,
        "key_rotated_at": _nullable(NUM),
        "last_seen": _nullable(NUM),
        "last_rssi": _nullable(INT),
        "last_snr": _nullable(NUM),
        "last_bridge": _nullable(STR),
        "battery_v": {
            **_nullable(NUM),
            "description": "volts, from the newest reading or module status that reports it",
        },
        "status": _nullable(ANY_OBJECT),
        "online": BOOL,
        "latest": _nullable({"$ref": "#/components/schemas/Reading"}),
    },
}
DOWNLINK = {
    "type": "object",
    "required": [
        "id",
        "device_id",
        "command",
        "args",
        "status",
        "created_at",
        "expires_at",
        "status_at",
    ],
    "properties": {
        "id": INT,
        "device_id": STR,
        "command": DOWNLINK_COMMAND,
        "args": ANY_OBJECT,
        "source": STR,
        "created_at": NUM,
        "expires_at": NUM,
        "status": _enum("queued", "sent", "acked", "failed", "expired"),
        "status_at": NUM,
        "sent_fcnt": _nullable(INT),
        "result": _nullable(STR),
    },
}
DOWNLINK_REQUEST = {
    "type": "object",
    "required": ["command"],
    "additionalProperties": False,
    "properties": {
        "command": DOWNLINK_COMMAND,
        "args": {
            "type": "object",
            "description": "set_interval {seconds: 10..86400}; set_output {output: 0..255, value: 0|1}; "
            "request_status {}; reboot {}; config {values: {...}}",
        },
        "ttl_s": {
            "type": "number",
            "exclusiveMinimum": True,
            "minimum": 0,
            "maximum": 2592000,
        },
    },
}
ALARM = {
    "type": "object",
    "required": ["id", "rule", "severity", "state", "message", "raised_at"],
    "properties": {
        "id": INT,
        "rule": STR,
        "device_id": _nullable(STR),
        "severity": _enum("info", "warning", "critical"),
        "state": _enum("raised", "acknowledged", "cleared"),
        "message": STR,
        "reading_id": _nullable(INT),
        "value": _nullable(NUM),
        "raised_at": NUM,
        "acknowledged_at": _nullable(NUM),
        "acknowledged_by": _nullable(STR),
        "cleared_at": _nullable(NUM),
    },
}
SYNC = {
    "type": "object",
    "required": [
        "backlog",
        "oldest_age_s",
        "last_success",
        "last_error",
        "bytes_today",
        "sinks",
    ],
    "properties": {
        "backlog": INT,
        "oldest_age_s": _nullable(NUM),
        "last_success": _nullable(NUM),
        "last_error": _nullable(STR),
        "last_error_at": _nullable(NUM),
        "bytes_today": INT,
        "sinks": {"type": "array", "items": ANY_OBJECT},
    },
    "additionalProperties": True,
}
SERIES = {
    "type": "object",
    "required": ["window_s", "bucket_s", "times", "series"],
    "properties": {
        "window_s": INT,
        "bucket_s": INT,
        "times": {"type": "array", "items": NUM},
        "series": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "unit", "values"],
                "properties": {
                    "channel": _nullable(INT),
                    "name": _nullable(STR),
                    "unit": STR,
                    "values": {"type": "array", "items": _nullable(NUM)},
                },
            },
        },
    },
}
QUARANTINED = {
    "type": "object",
    "required": ["device_id", "first_seen", "last_seen", "count"],
    "properties": {
        "device_id": STR,
        "first_seen": NUM,
        "last_seen": NUM,
        "count": INT,
        "last_rssi": _nullable(INT),
        "last_bridge": _nullable(STR),
        "last_frame": _nullable(STR),
    },
}
RULE = {
    "type": "object",
    "required": ["id", "name", "source", "enabled", "definition", "created_at", "updated_at"],
    "properties": {
        "id": INT,
        "name": STR,
        "source": _enum("config", "panel"),
        "enabled": BOOL,
        "definition": {
            "type": "object",
            "description": "the validated rule (docs/rules.md): name, kind, severity and the kind's fields",
            "required": ["name", "kind", "severity"],
            "additionalProperties": True,
        },
        "created_at": NUM,
        "updated_at": NUM,
    },
}
ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": STR, "message": STR, "field": STR},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _list(key: str, item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "array", "items": _ref(item)}},
    }


ERRORS = {
    "400": _json(_ref("Error"), "Invalid parameter or body; `field` names it"),
    "401": _json(_ref("Error"), "Missing, unknown or revoked bearer token"),
}
NOT_FOUND = {"404": _json(_ref("Error"), "No such device or alarm")}
FORBIDDEN = {"403": _json(_ref("Error"), "The token's user lacks the role")}


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema}


DEVICE_PARAM = _path_param("device_id", DEVICE_ID)


def _get(summary: str, schema: dict, params: list | None = None, not_found: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {"200": _json(schema, "OK"), **ERRORS},
    }
    if not_found:
        op["responses"].update(NOT_FOUND)
    if params:
        op["parameters"] = params
    return op


def document() -> dict[str, Any]:
    time_param = {"type": "number", "description": "Unix seconds"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Fieldpost panel API",
            "version": "1",
            "description": "Read a site's devices, readings, alarms and sync state; queue downlinks; "
            "acknowledge alarms. Authenticate with a per-user bearer token made in Settings. "
            "Viewers read; operators and admins also act.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Value": VALUE,
                "Reading": READING,
                "Device": DEVICE,
                "Downlink": DOWNLINK,
                "DownlinkRequest": DOWNLINK_REQUEST,
                "Alarm": ALARM,
                "SyncStatus": SYNC,
                "Series": SERIES,
                "Quarantined": QUARANTINED,
                "Rule": RULE,
                "Error": ERROR,
            },
        },
        "paths": {
            "/api/v1/me": {
                "get": _get(
                    "The token's user",
                    {
                        "type": "object",
                        "required": ["username", "role"],
                        "properties": {
                            "username": STR,
                            "role": _enum("admin", "operator", "viewer"),
                        },
                    },
                )
            },
            "/api/v1/devices": {
                "get": _get(
                    "Registered devices with their latest reading",
                    _list("devices", "Device"),
                )
            },
            "/api/v1/devices/{device_id}": {
                "get": _get("One device", _ref("Device"), [DEVICE_PARAM], not_found=True),
            },
            "/api/v1/devices/{device_id}/readings": {
                "get": _get(
                    "Readings of a device in [start, end), oldest first",
                    {
                        "type": "object",
                        "required": ["readings", "limit"],
                        "properties": {
                            "readings": {"type": "array", "items": _ref("Reading")},
                            "limit": INT,
                        },
                    },
                    [
                        DEVICE_PARAM,
                        _query_param("start", time_param),
                        _query_param("end", time_param),
                        _query_param("limit", _int_range(1, 5000)),
                        _query_param("after_id", _int_range(0, 4611686018427387904)),
                    ],
                    not_found=True,
                ),
            },
            "/api/v1/devices/{device_id}/series": {
                "get": _get(
                    "Chart data: values averaged into time buckets",
                    _ref("Series"),
                    [
                        DEVICE_PARAM,
                        _query_param("window", _enum("24h", "7d")),
                    ],
                    not_found=True,
                ),
            },
            "/api/v1/devices/{device_id}/downlinks": {
                "get": _get(
                    "The device's latest downlinks, newest first",
                    _list("downlinks", "Downlink"),
                    [DEVICE_PARAM],
                    not_found=True,
                ),
                "post": {
                    "summary": "Queue a downlink (operator); it rides on the ACK of the module's next uplink",
                    "parameters": [DEVICE_PARAM],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("DownlinkRequest")}},
                    },
                    "responses": {
                        "201": _json(_ref("Downlink"), "Queued"),
                        **ERRORS,
                        **FORBIDDEN,
                        **NOT_FOUND,
                    },
                },
            },
            "/api/v1/alarms": {
                "get": _get(
                    "Alarms, open ones first",
                    _list("alarms", "Alarm"),
                    [
                        _query_param("state", _enum("open", "all", "raised", "acknowledged", "cleared")),
                        _query_param("device", STR),
                        _query_param("limit", _int_range(1, 1000)),
                    ],
                ),
            },
            "/api/v1/alarms/{alarm_id}/acknowledge": {
                "post": {
                    "summary": "Acknowledge a raised alarm (operator)",
                    "parameters": [_path_param("alarm_id", _int_range(0, 9223372036854775807))],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["acknowledged", "alarm"],
                                "properties": {
                                    "acknowledged": BOOL,
                                    "alarm": _ref("Alarm"),
                                },
                            },
                            "false when it was already acknowledged or cleared",
                        ),
                        **ERRORS,
                        **FORBIDDEN,
                        **NOT_FOUND,
                    },
                },
            },
            "/api/v1/sync": {
                "get": _get(
                    "Cloud sync state: backlog and age, last success and error",
                    _ref("SyncStatus"),
                )
            },
            "/api/v1/quarantine": {
                "get": _get(
                    "Unknown modules heard on the air",
                    _list("quarantine", "Quarantined"),
                )
            },
            "/api/v1/rules": {
                "get": _get(
                    "Local rules, from the config file and from the panel (changed in the panel by an admin)",
                    _list("rules", "Rule"),
                )
            },
        },
    }
