# AES-128 and AES-CMAC (RFC 4493) over cryptolib's AES in ECB mode, present on
# the unix, ESP32 and RP2 ports. MicroPython has no CMAC, so it is written out
# here. Only AES *encryption* is ever needed on a node: LoRaWAN has the network
# encrypt a join accept with AES decrypt so that a device opens it by encrypting.
import cryptolib

from micropython import const

_ECB = const(1)
_RB = const(0x87)  # the CMAC subkey constant for 128-bit blocks


def aes(key):
    # One cipher per key; ECB keeps no state between blocks, so it is reused.
    return cryptolib.aes(bytes(key), _ECB)


def _shift(block):
    # block << 1 in GF(2^128), XOR Rb when the top bit fell out
    out = bytearray(16)
    carry = 0
    for i in range(15, -1, -1):
        b = block[i]
        out[i] = ((b << 1) & 0xFF) | carry
        carry = b >> 7
    if carry:
        out[15] ^= _RB
    return out


class Cmac:
    # AES-CMAC with one key: the cipher and the two subkeys are made once, the
    # working block is preallocated (a MIC per uplink must not churn a 64K heap).
    def __init__(self, key):
        self.cipher = aes(key)
        l = bytearray(16)
        self.cipher.encrypt(bytes(16), l)
        self.k1 = _shift(l)
        self.k2 = _shift(self.k1)
        self._x = bytearray(16)

    def digest(self, *parts):
        # CMAC of the concatenation of `parts` (bytes-like), without joining them.
        # A block is encrypted only when a further byte arrives, so the last one
        # (full or not, even empty) is left for the subkey step.
        x = self._x
        for i in range(16):
            x[i] = 0
        pos = 0
        for p in parts:
            for b in p:
                if pos == 16:
                    self.cipher.encrypt(x, x)
                    pos = 0
                x[pos] ^= b
                pos += 1
        if pos == 16:
            k = self.k1
        else:
            x[pos] ^= 0x80
            k = self.k2
        for i in range(16):
            x[i] ^= k[i]
        self.cipher.encrypt(x, x)
        return bytes(x)


def equal(a, b):
    # Constant-time compare, so the time taken does not reveal how many bytes matched.
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
