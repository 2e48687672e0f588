# Prints "key: message" for a config document given as JSON on argv[1], or "OK <role>".
import json
import sys

from fp import config

try:
    cfg = config.validate(json.loads(sys.argv[1]))
    print("OK", cfg["role"], cfg["interval"], cfg["region"])
except config.ConfigError as e:
    print("ERR", e.key, "|", e.message)
