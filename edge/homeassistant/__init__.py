"""Home Assistant MQTT discovery (optional): every node's measures appear in Home Assistant as sensors.

``config`` ([homeassistant] section), ``discovery`` (topics and payloads, pure), ``publisher`` (the
MQTT connection with its last will), ``service`` (the daemon's attach point). docs/services.md.
"""
