"""Topics and payloads of Home Assistant's MQTT discovery for sensors. Pure: no I/O.

One sensor per numeric measure of a node (a decoded value: name, channel, unit), configured by a
retained message on ``<discovery_prefix>/sensor/<node_id>/<object_id>/config`` as Home Assistant's
MQTT sensor documents it: ``state_topic`` + ``value_template``, ``unique_id``, ``device_class``,
``unit_of_measurement``, ``state_class``, a ``device`` block (one Home Assistant device per node;
no ``via_device``: the edge announces no device of its own for it to name) and ``availability_topic`` (the edge's status topic: online by the birth message,
offline by the last will). A node's measures share one JSON state topic. An empty retained
config removes the entity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from edge.homeassistant.config import HomeAssistantConfig

ONLINE, OFFLINE = "online", "offline"

# Decoded value name -> (device_class, state_class), for the units the codecs give. A name not here
# becomes a sensor without a device class (Home Assistant then accepts any unit).
MEASURES: dict[str, tuple[str | None, str]] = {
    "temperature": ("temperature", "measurement"),
    "humidity": ("humidity", "measurement"),
    "barometer": ("atmospheric_pressure", "measurement"),
    "voltage": ("voltage", "measurement"),
    "battery": ("voltage", "measurement"),  # the Fieldpost battery channel is in volts, not %
    "current": ("current", "measurement"),
    "frequency": ("frequency", "measurement"),
    "illuminance": ("illuminance", "measurement"),
    "power": ("power", "measurement"),
    "energy": ("energy", "total_increasing"),
    "distance": ("distance", "measurement"),
    "altitude": ("distance", "measurement"),
    "concentration": (None, "measurement"),
    "percentage": (None, "measurement"),
}
# The units Home Assistant accepts for each device class used above (its sensor documentation).
DEVICE_CLASS_UNITS = {
    "temperature": {"°C", "°F", "K"},
    "humidity": {"%"},
    "atmospheric_pressure": {"cbar", "bar", "hPa", "mmHg", "inHg", "kPa", "mbar", "Pa", "psi"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "illuminance": {"lx"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal", "Mcal", "Gcal"},
    "distance": {"km", "m", "cm", "mm", "mi", "nmi", "yd", "in", "ft"},
}
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Node:
    """What discovery says about one registered device."""

    id: str
    name: str = ""
    board: str = ""
    firmware: str = ""
    interval_s: int = 300

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Node:
        return cls(
            row["id"],
            row.get("name") or "",
            row.get("board") or "",
            row.get("firmware") or "",
            row.get("interval_s") or 300,
        )


def slug(text: str) -> str:
    return _UNSAFE.sub("_", text) or "_"


def node_id(site: str) -> str:
    """The discovery topic's node level: every entity of this edge lives under it."""
    return f"fieldpost_{slug(site)}"


def availability_topic(config: HomeAssistantConfig, site: str) -> str:
    return f"{config.topic_prefix}/{slug(site)}/status"


def state_topic(config: HomeAssistantConfig, site: str, device_id: str) -> str:
    return f"{config.topic_prefix}/{slug(site)}/{slug(device_id)}/state"


def config_topic(config: HomeAssistantConfig, site: str, object_id: str) -> str:
    return f"{config.discovery_prefix}/sensor/{node_id(site)}/{object_id}/config"


def config_topics_filter(config: HomeAssistantConfig, site: str) -> str:
    """Subscribing to this hands back every config this edge left retained (to find stale ones)."""
    return f"{config.discovery_prefix}/sensor/{node_id(site)}/+/config"


def measure_key(value: dict[str, Any]) -> str:
    return slug(f"{value['name']}_{value['channel']}")


def object_id(device_id: str, key: str) -> str:
    return slug(f"{device_id}_{key}")


def numeric(value: dict[str, Any]) -> bool:
    v = value.get("value")
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def sensor_config(
    config: HomeAssistantConfig, site: str, node: Node, value: dict[str, Any], *, version: str = ""
) -> tuple[str, dict[str, Any]]:
    """(topic, payload) announcing one measure of ``node`` as a Home Assistant sensor."""
    key = measure_key(value)
    device_class, state_class = MEASURES.get(value["name"], (None, "measurement"))
    unit = value.get("unit") or None
    if device_class is not None and unit not in DEVICE_CLASS_UNITS[device_class]:
        device_class = (
            None  # a unit Home Assistant would refuse for that class: no class rather than an error
        )
    payload: dict[str, Any] = {
        "name": f"{value['name'].replace('_', ' ').capitalize()} {value['channel']}",
        "unique_id": f"fieldpost_{slug(node.id)}_{key}",
        "state_topic": state_topic(config, site, node.id),
        "value_template": f"{{{{ value_json.{key} }}}}",
        "state_class": state_class,
        "availability_topic": availability_topic(config, site),
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        # unavailable when the node has been silent for three of its intervals
        "expire_after": max(60, 3 * int(node.interval_s)),
        "device": {
            "identifiers": [f"fieldpost_{slug(node.id)}"],
            "name": node.name or f"Fieldpost {node.id}",
            "manufacturer": "Fieldpost",
            "model": node.board or "node",
            "sw_version": node.firmware or None,
        },
        "origin": {"name": "Fieldpost", "sw_version": version or None},
    }
    if device_class is not None:
        payload["device_class"] = device_class
    if unit is not None:
        payload["unit_of_measurement"] = unit
    _drop_none(payload)
    return config_topic(config, site, object_id(node.id, key)), payload


def state(values: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON state of a node's numeric measures, keyed as the configs' value templates read them."""
    return {measure_key(v): v["value"] for v in values if numeric(v)}


def _drop_none(mapping: dict[str, Any]) -> None:
    for key in [k for k, v in mapping.items() if v is None]:
        del mapping[key]
    for v in mapping.values():
        if isinstance(v, dict):
            _drop_none(v)
