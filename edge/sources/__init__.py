"""Devices that are not Fieldpost modules: LoRaWAN devices through a local ChirpStack (MQTT
integration), and UDP / CoAP devices on the LAN. Every source writes through the ingest writer
(edge.ingest.Ingestor), so a message is committed before it is acknowledged. docs/sources.md.
"""
