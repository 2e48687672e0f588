# HMAC-SHA256 and the 4-byte message integrity code of docs/radio.md section 1.
# MicroPython has hashlib.sha256 but no hmac module, so HMAC (RFC 2104) is
# written out here. Block size of SHA-256 is 64 bytes.
import hashlib

from micropython import const

_BLOCK = const(64)
MIC_SIZE = const(4)

# Preallocated pads: one MIC per uplink must not churn the heap on a 64K board.
_ipad = bytearray(_BLOCK)
_opad = bytearray(_BLOCK)


def hmac_sha256(key, msg):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    n = len(key)
    for i in range(_BLOCK):
        k = key[i] if i < n else 0
        _ipad[i] = k ^ 0x36
        _opad[i] = k ^ 0x5C
    inner = hashlib.sha256(_ipad)
    inner.update(msg)
    outer = hashlib.sha256(_opad)
    outer.update(inner.digest())
    return outer.digest()


def mic(key, signed):
    return hmac_sha256(key, signed)[:MIC_SIZE]


def mic_equal(a, b):
    # Constant-time compare, so the time taken does not reveal how many bytes matched.
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
