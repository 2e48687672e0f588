"""LoRaWAN 1.0.4 class A at the edge: frames and crypto (``frames``), the join server
(``join``), the network server's per-device sessions and counters (``sessions``), the
``[lorawan]`` settings (``settings``) and flood limits (``limits``). Spec: docs/radio.md.

The firmware twin is firmware/fp/lorawan/; both pass tests/vectors/lorawan.json.
"""
