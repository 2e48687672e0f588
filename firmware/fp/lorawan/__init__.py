# LoRaWAN 1.0.4 class A for Fieldpost nodes: AES-128 (cryptolib) and AES-CMAC
# (crypto.py), PHYPayload framing, join request/accept and session keys
# (frames.py), the 32-bit counters behind the 16 bits on the air (counter.py).
# Spec: docs/radio.md; the edge twin is edge/lorawan/; both pass
# tests/vectors/lorawan.json.
