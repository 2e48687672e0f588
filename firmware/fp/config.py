# config.json: what a module is (identity, role, board) and how it behaves.
# Every key has a default except the identity; a bad value raises ConfigError
# naming the key, so provisioning and the LOG frame say exactly what is wrong.
import json

from fp import store

ROLES = ("node", "bridge")
_READING_LEN = 11  # the standard reading (fp/lpp.py)
_OVERHEAD_V1 = 18  # fp/radio_frame.py OVERHEAD: a v1 frame's header and MIC
_OVERHEAD_LORAWAN = 13  # fp/lorawan/frames.py OVERHEAD (not imported: the validator stays small)

# key: (default, kind, low, high). kind: "int", "num", "bool", "str", "hex8",
# "hex16", "role", "air", "region". low/high bound numbers (inclusive).
SCHEMA = {
    "id": (None, "hex8", 0, 0),  # device id = LoRaWAN DevEUI, 16 hex digits
    "key": (None, "hex16", 0, 0),  # device key = LoRaWAN AppKey, 32 hex digits
    "join_eui": ("0000000000000000", "hex8", 0, 0),  # LoRaWAN JoinEUI (AppEUI)
    # node uplinks: "otaa" (LoRaWAN, join first), "abp" (LoRaWAN, the three keys below), "v1"
    # (the old Fieldpost frames; an edge takes them only from devices that never joined)
    "activation": ("otaa", "activation", 0, 0),
    "devaddr": ("", "opthex4", 0, 0),  # ABP only
    "nwk_skey": ("", "opthex16", 0, 0),  # ABP only
    "app_skey": ("", "opthex16", 0, 0),  # ABP only
    "role": ("node", "role", 0, 0),
    "board": ("unix", "str", 0, 0),
    "region": ("EU868", "region", 0, 0),
    "dr": (0, "int", 0, 15),  # data rate index within the region
    "interval": (300, "int", 10, 86400),  # seconds between readings
    "rx_window": (3, "num", 0.1, 30),  # seconds a v1 node listens after its uplink (LoRaWAN: RX1/RX2)
    "retry_base": (8, "num", 0.5, 3600),  # first retry delay, seconds (doubles, with jitter)
    "retry_max": (900, "num", 1, 86400),  # longest retry delay
    "journal_max": (256, "int", 4, 4096),  # frames kept for resending; oldest dropped beyond
    "journal_seg": (4096, "int", 256, 65536),  # bytes per journal segment
    "fcnt_block": (32, "int", 1, 4096),  # frame counter values reserved per flash write
    "status_every": (300, "num", 1, 86400),  # seconds between STATUS frames (bridge) / port 3 (node)
    "own_readings": (False, "bool", 0, 0),  # a bridge also sends its own sensors
    "duty_cycle": (-1, "num", -1, 1),  # override the region's duty cycle (-1: region's)
    "time_scale": (1, "num", 1, 100000),  # unix port: run the clock this many times faster
    "watchdog_s": (0, "num", 0, 3600),  # 0: the board profile's watchdog.timeout_ms (clamped to the MCU's)
    "safe_boots": (3, "int", 1, 100),  # crashed boots in a row before safe mode
    "air": ({}, "air", 0, 0),  # unix port: loopback radio, see fp/hal/air.py
    "seed": (-1, "int", -1, 0x7FFFFFFF),  # random seed for jitter (-1: from the hardware)
    "sleep": (True, "bool", 0, 0),  # a node sleeps between readings (false: stays awake, as before issue 13)
    "deep_reboot": (False, "bool", 0, 0),  # unix port: a deep sleep boots again, as on an ESP32 (tests)
    "trace": (False, "bool", 0, 0),  # print one line per radio event on stdout (tests, bench)
}
# Keys a downlink may change (the identity and the role only by provisioning).
REMOTE_KEYS = ("interval", "rx_window", "retry_base", "retry_max", "status_every", "dr", "own_readings",
               "duty_cycle")
AIR_KEYS = {"port": (0, 65535), "peers": None, "loss": (0, 1), "rssi": (-150, 0), "snr": (-20, 15),
            "seed": (0, 0x7FFFFFFF)}


class ConfigError(ValueError):
    def __init__(self, key, message):
        super().__init__("%s: %s" % (key, message))
        self.key = key
        self.message = message


def _hex(key, value, nbytes):
    if not isinstance(value, str) or len(value) != 2 * nbytes:
        raise ConfigError(key, "must be %d hex digits" % (2 * nbytes))
    for c in value:
        if c not in "0123456789abcdef":
            raise ConfigError(key, "must be lower-case hex digits")
    return value


def check(key, value):
    # Returns the value (ints for int keys) or raises ConfigError.
    if key not in SCHEMA:
        raise ConfigError(key, "unknown key")
    _, kind, lo, hi = SCHEMA[key]
    if kind in ("int", "num"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, "must be a number")
        if kind == "int" and value != int(value):
            raise ConfigError(key, "must be a whole number")
        if not lo <= value <= hi:
            raise ConfigError(key, "%r out of range %r..%r" % (value, lo, hi))
        return int(value) if kind == "int" else value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(key, "must be true or false")
        return value
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise ConfigError(key, "must be a non-empty string")
        return value
    if kind == "hex8":
        return _hex(key, value, 8)
    if kind == "hex16":
        return _hex(key, value, 16)
    if kind in ("opthex4", "opthex16"):
        return value if value == "" else _hex(key, value, 4 if kind == "opthex4" else 16)
    if kind == "activation":
        if value not in ("otaa", "abp", "v1"):
            raise ConfigError(key, "must be otaa, abp or v1")
        return value
    if kind == "role":
        if value not in ROLES:
            raise ConfigError(key, "must be one of %s" % ", ".join(ROLES))
        return value
    if kind == "region":
        from fp.airtime import REGIONS
        if value not in REGIONS:
            raise ConfigError(key, "unknown region %r" % (value,))
        return value
    if kind == "air":
        if not isinstance(value, dict):
            raise ConfigError(key, "must be an object")
        for k in value:
            if k not in AIR_KEYS:
                raise ConfigError("air." + k, "unknown key")
            rng = AIR_KEYS[k]
            v = value[k]
            if rng is None:
                if not isinstance(v, list) or [p for p in v if not isinstance(p, int)]:
                    raise ConfigError("air." + k, "must be a list of port numbers")
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not rng[0] <= v <= rng[1]:
                raise ConfigError("air." + k, "%r out of range %r..%r" % (v, rng[0], rng[1]))
        return value
    raise ConfigError(key, "unhandled kind")


def validate(raw, partial=False):
    # raw: dict from JSON. Returns a complete config dict (defaults filled in).
    if not isinstance(raw, dict):
        raise ConfigError("config", "must be a JSON object")
    cfg = {}
    for key in raw:
        cfg[key] = check(key, raw[key])
    if partial:
        return cfg
    for key in ("id", "key"):  # the identity first: the error names what provisioning must write
        if key not in cfg:
            raise ConfigError(key, "missing (written at provisioning)")
    for key in SCHEMA:
        if key not in cfg:
            default = SCHEMA[key][0]
            if default is None:
                raise ConfigError(key, "missing (written at provisioning)")
            cfg[key] = default
    if cfg["activation"] == "abp" and "" in (cfg["devaddr"], cfg["nwk_skey"], cfg["app_skey"]):
        raise ConfigError("activation", "abp needs devaddr, nwk_skey and app_skey")
    if cfg["activation"] == "v1":
        for key in ("join_eui", "devaddr", "nwk_skey", "app_skey"):  # unused: RAM on a 64K board
            del cfg[key]
    from fp.airtime import RegionError, region_params
    try:
        _, _, _, max_payload = region_params(cfg["region"], cfg["dr"])
    except RegionError as e:
        raise ConfigError("dr", str(e))
    smallest = _READING_LEN + (_OVERHEAD_V1 if cfg["activation"] == "v1" else _OVERHEAD_LORAWAN)
    if max_payload < smallest:
        # e.g. US915 DR0 (11 bytes), or a Sigfox-class budget with v1's larger frame: no reading fits
        raise ConfigError("dr", "%s DR%d carries %d bytes; a reading's radio frame needs %d"
                          % (cfg["region"], cfg["dr"], max_payload, smallest))
    return cfg


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("config", "%s not found" % path)
    try:
        raw = json.loads(text)
    except ValueError:
        raise ConfigError("config", "%s is not valid JSON" % path)
    return validate(raw)


def save(path, cfg):
    # Atomic: tmp + rename. Plain JSON (no CRC trailer), so people can read it.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(cfg))
    store.replace(tmp, path)


def update(path, cfg, changes):
    # A remote config update: only REMOTE_KEYS, validated as a whole before anything is written.
    for key in changes:
        if key not in REMOTE_KEYS:
            raise ConfigError(key, "not changeable remotely")
    merged = dict(cfg)
    for key in changes:
        merged[key] = check(key, changes[key])
    merged = validate(merged)
    raw = {}
    try:
        with open(path) as f:
            raw = json.loads(f.read())
    except (OSError, ValueError):
        raw = dict(cfg)
    for key in changes:
        raw[key] = merged[key]
    save(path, raw)
    return merged
