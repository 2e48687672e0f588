"""Home Assistant's MQTT sensor discovery schema, written down from its documentation (the MQTT
Sensor integration page, and the Sensor page's device classes with their units) to check payloads
against. Independent of edge/homeassistant: a mistake there must not be copied here."""

from __future__ import annotations

# Sensor device classes and the units Home Assistant accepts for them (the subset a Fieldpost node
# can report; a class not listed here is a test failure, not a pass).
DOCUMENTED_UNITS = {
    "temperature": ["°C", "°F", "K"],
    "humidity": ["%"],
    "atmospheric_pressure": ["cbar", "bar", "hPa", "mmHg", "inHg", "kPa", "mbar", "Pa", "psi"],
    "pressure": ["cbar", "bar", "hPa", "mmHg", "inHg", "kPa", "mbar", "Pa", "psi"],
    "voltage": ["V", "mV", "µV", "kV", "MV"],
    "current": ["A", "mA"],
    "frequency": ["Hz", "kHz", "MHz", "GHz"],
    "illuminance": ["lx"],
    "power": ["mW", "W", "kW", "MW", "GW", "TW"],
    "energy": ["J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"],
    "distance": ["km", "m", "cm", "mm", "mi", "nmi", "yd", "in", "ft"],
    "battery": ["%"],
}

DEVICE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "configuration_url": {"type": "string"},
        "connections": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        "hw_version": {"type": "string"},
        "identifiers": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "manufacturer": {"type": "string"},
        "model": {"type": "string"},
        "model_id": {"type": "string"},
        "name": {"type": "string"},
        "serial_number": {"type": "string"},
        "suggested_area": {"type": "string"},
        "sw_version": {"type": "string"},
        "via_device": {"type": "string"},
    },
}

SENSOR = {
    "type": "object",
    "required": ["state_topic"],
    "additionalProperties": False,
    "properties": {
        "availability": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["topic"],
                "properties": {
                    "topic": {"type": "string"},
                    "payload_available": {"type": "string"},
                    "payload_not_available": {"type": "string"},
                    "value_template": {"type": "string"},
                },
            },
        },
        "availability_mode": {"enum": ["all", "any", "latest"]},
        "availability_template": {"type": "string"},
        "availability_topic": {"type": "string"},
        "device": DEVICE,
        "device_class": {"enum": sorted(DOCUMENTED_UNITS)},
        "enabled_by_default": {"type": "boolean"},
        "encoding": {"type": "string"},
        "entity_category": {"enum": ["diagnostic"]},
        "entity_picture": {"type": "string"},
        "expire_after": {"type": "integer", "minimum": 0},
        "force_update": {"type": "boolean"},
        "icon": {"type": "string"},
        "json_attributes_template": {"type": "string"},
        "json_attributes_topic": {"type": "string"},
        "last_reset_value_template": {"type": "string"},
        "name": {"type": ["string", "null"]},
        "default_entity_id": {"type": "string"},
        "object_id": {"type": "string"},
        "options": {"type": "array"},
        "origin": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "sw_version": {"type": "string"},
                "support_url": {"type": "string"},
            },
        },
        "payload_available": {"type": "string"},
        "payload_not_available": {"type": "string"},
        "platform": {"const": "sensor"},
        "qos": {"enum": [0, 1, 2]},
        "state_class": {"enum": ["measurement", "measurement_angle", "total", "total_increasing"]},
        "state_topic": {"type": "string"},
        "suggested_display_precision": {"type": "integer"},
        "unique_id": {"type": "string"},
        "unit_of_measurement": {"type": "string"},
        "value_template": {"type": "string"},
    },
    # availability_topic and availability are exclusive; a device block needs a unique_id
    "not": {"required": ["availability", "availability_topic"]},
    "dependentRequired": {"device": ["unique_id"]},
}

CONFIG_TOPIC = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*/sensor/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/config$"
