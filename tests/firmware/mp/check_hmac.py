import json
import sys
from binascii import hexlify, unhexlify

from fp.mic import hmac_sha256

cases = json.load(open(sys.argv[1]))
for key, msg, want in cases:
    got = hexlify(hmac_sha256(unhexlify(key), unhexlify(msg))).decode()
    if got != want:
        print("FAIL", key, msg, got)
print("OK", len(cases))
