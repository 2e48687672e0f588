# Downlink commands (docs/radio.md section 3): decode and validate, without
# acting. The role applies a validated command and answers on uplink port 2.
import json
import struct

from fp import config, store
from fp import radio_frame as rf

MIN_INTERVAL = 10
MAX_INTERVAL = 86400


class CommandError(Exception):
    # result: RESULT_UNKNOWN_COMMAND / RESULT_OUT_OF_RANGE; reason: short code
    # (command, range); text: sent back in the port-2 answer.
    def __init__(self, dl_id, result, reason, text):
        super().__init__(text)
        self.dl_id = dl_id
        self.result = result
        self.reason = reason
        self.text = text


def _range(dl_id, text):
    return CommandError(dl_id, rf.RESULT_OUT_OF_RANGE, "range", text)


def parse_and_validate(payload, outputs=()):
    # Returns (dl_id, cmd, args): args is seconds (1), (output, value) (2),
    # None (3, 4) or the dict of config changes (5).
    dl_id, cmd, args = rf.parse_command(payload)
    if cmd == rf.CMD_SET_INTERVAL:
        if len(args) != 4:
            raise _range(dl_id, "interval needs 4 bytes")
        seconds = struct.unpack(">I", args)[0]
        if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            raise _range(dl_id, "interval %d not in %d..%d" % (seconds, MIN_INTERVAL, MAX_INTERVAL))
        return dl_id, cmd, seconds
    if cmd == rf.CMD_SET_OUTPUT:
        if len(args) != 2:
            raise _range(dl_id, "set output needs 2 bytes")
        output, value = args[0], args[1]
        if output not in outputs:
            raise _range(dl_id, "no output %d" % output)
        if value > 1:
            raise _range(dl_id, "output value %d not 0/1" % value)
        return dl_id, cmd, (output, value)
    if cmd in (rf.CMD_REQUEST_STATUS, rf.CMD_REBOOT):
        if args:
            raise _range(dl_id, "no arguments expected")
        return dl_id, cmd, None
    if cmd == rf.CMD_CONFIG:
        try:
            changes = json.loads(bytes(args))
        except (ValueError, UnicodeError):
            raise _range(dl_id, "config is not JSON")
        if not isinstance(changes, dict) or not changes:
            raise _range(dl_id, "config must be a non-empty object")
        try:
            for key in changes:
                if key not in config.REMOTE_KEYS:
                    raise config.ConfigError(key, "not changeable remotely")
                config.check(key, changes[key])
        except config.ConfigError as e:
            raise _range(dl_id, str(e))
        return dl_id, cmd, changes
    raise CommandError(dl_id, rf.RESULT_UNKNOWN_COMMAND, "command", "unknown command %d" % cmd)


def run(dev, payload):
    # A command for fp/device.py Device `dev`: validate, act, answer on port 2 (the answer is
    # journaled: it survives a reboot).
    try:
        dl_id, cmd, args = parse_and_validate(payload, tuple(dev.hal.outputs))
    except rf.RadioError as e:
        dev.reject(e.args[0], "command without id")
        dev.status_due = True
        return
    except CommandError as e:
        dev.reject(e.reason, e.text)
        _answer(dev, e.dl_id, e.result, e.text)
        return
    if dl_id in dev.dl_ids:
        _answer(dev, dl_id, rf.RESULT_OK, "repeat")  # done before: confirm, do not redo
        return
    result, text = rf.RESULT_OK, ""
    try:
        if cmd == rf.CMD_SET_INTERVAL:
            dev.cfg = config.update(dev.cfg_path, dev.cfg, {"interval": args})
        elif cmd == rf.CMD_SET_OUTPUT:
            dev.hal.outputs[args[0]](args[1])
        elif cmd == rf.CMD_REQUEST_STATUS:
            dev.status_due = True
        elif cmd == rf.CMD_REBOOT:
            dev.reboot_due = True
        elif cmd == rf.CMD_CONFIG:
            dev.cfg = config.update(dev.cfg_path, dev.cfg, args)
    except config.ConfigError as e:
        result, text = rf.RESULT_OUT_OF_RANGE, str(e)
    except Exception as e:  # hardware refused (output pin, flash full)
        result, text = rf.RESULT_FAILED, repr(e)
    _remember(dev, dl_id)
    _answer(dev, dl_id, result, text)


def _remember(dev, dl_id):
    from fp.device import DLIDS
    dev.dl_ids = ([dl_id] + dev.dl_ids)[:4]
    ids = dev.dl_ids + [0xFFFF] * (4 - len(dev.dl_ids))
    store.write_atomic(DLIDS, struct.pack(">4H", *ids))


def _answer(dev, dl_id, result, text):
    dev.stats["results"] += 1
    dev.queue(rf.PORT_RESULT, rf.result_payload(dl_id, result, text))
