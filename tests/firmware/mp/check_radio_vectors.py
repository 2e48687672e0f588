# Runs under `micropython`: checks firmware/fp against tests/vectors/radio.json.
# Prints one line per failure and "OK <count>" at the end; the pytest side asserts.
import json
import sys
from binascii import hexlify, unhexlify

from fp import lpp
from fp import radio_frame as rf
from fp import v1frame as v1
import v1build
from fp.downlink import CommandError, parse_and_validate
from fp.mic import hmac_sha256

vec = json.load(open(sys.argv[1]))
checked = 0
failures = []


def h(b):
    return hexlify(b).decode()


def fail(name, msg):
    failures.append(f"{name}: {msg}")


for v in vec["hmac_sha256"]:
    checked += 1
    got = h(hmac_sha256(unhexlify(v["key"]), unhexlify(v["msg"])))
    if got != v["hex"]:
        fail("hmac " + v["msg"][:16], got)

for v in vec["uplinks"]:
    checked += 1
    f = v1build.build_uplink(
        unhexlify(v["device"]), unhexlify(v["key"]), v["fcnt"], v["port"], unhexlify(v["payload"])
    )
    if h(f) != v["hex"]:
        fail(v["name"], "built " + h(f))
    dev, fcnt, port = v1.check(unhexlify(v["hex"]), rf.KIND_UPLINK)
    if h(dev) != v["device"] or fcnt != v["fcnt"] or port != v["port"]:
        fail(v["name"], f"parsed {h(dev)} {fcnt} {port}")
    if not v1.mic_ok(unhexlify(v["hex"]), unhexlify(v["key"])):
        fail(v["name"], "MIC not accepted")

for v in vec["bad_uplinks"]:
    checked += 1
    data = unhexlify(v["hex"])
    try:
        v1.check(data, rf.KIND_UPLINK)
        reason = None if v1.mic_ok(data, unhexlify(v["key"])) else "mic"
    except rf.RadioError as e:
        reason = e.args[0]
    if reason != v["reason"]:
        fail(v["name"], f"reason {reason!r}")

for v in vec["downlinks"]:
    checked += 1
    dev, key = unhexlify(v["device"]), unhexlify(v["key"])
    cmd = unhexlify(v["command"]) if "command" in v else None
    f = v1build.build_downlink(dev, key, v["fcnt"], cmd)
    if h(f) != v["hex"]:
        fail(v["name"], "built " + h(f))
    port, command = v1.open_downlink(unhexlify(v["hex"]), dev, key, v["fcnt"])
    if port != v["port"]:
        fail(v["name"], f"port {port}")
    if cmd is not None:
        dl_id, code, args = parse_and_validate(command, outputs=(0, 1))
        if dl_id != v["dl_id"] or code != v["cmd"]:
            fail(v["name"], f"command {dl_id} {code}")
        if code == 1 and args != v["args"]["seconds"]:
            fail(v["name"], f"seconds {args!r}")
        if code == 2 and args != (v["args"]["output"], v["args"]["value"]):
            fail(v["name"], f"output {args!r}")
        if code == 5 and args != v["args"]["values"]:
            fail(v["name"], f"config {args!r}")

for v in vec["bad_downlinks"]:
    checked += 1
    dev, key = unhexlify(v["device"]), unhexlify(v["key"])
    reason = None
    result = None
    try:
        port, command = v1.open_downlink(unhexlify(v["hex"]), dev, key, v["fcnt"])
        parse_and_validate(command, outputs=(0, 1))
    except rf.RadioError as e:
        reason = e.args[0]
    except CommandError as e:
        reason = e.reason
        result = e.result
        if e.dl_id != v["dl_id"]:
            fail(v["name"], f"dl_id {e.dl_id}")
    if reason != v["reason"] or result != v.get("result"):
        fail(v["name"], f"reason {reason!r} result {result!r}")

for v in vec["serial_uplinks"]:
    checked += 1
    f = unhexlify(v["frame"])
    p = v1.serial_uplink(v["rssi"], v["snr"], v["rx_time"], f)
    if h(p) != v["hex"]:
        fail("serial uplink " + str(v["rssi"]), h(p))
    rssi, snr, rx_time, frame = v1build.parse_serial_uplink(p)
    if (rssi, snr, rx_time, frame) != (v["rssi"], v["snr"], v["rx_time"], f):
        fail("serial uplink parse", repr((rssi, snr, rx_time)))

for v in vec["acks"]:
    checked += 1
    result, dl = v1.parse_ack(unhexlify(v["hex"]))
    if result != v["result"] or h(dl) != v["downlink"]:
        fail(v["name"], f"ack {result} {h(dl)}")

for v in vec["lpp"]:
    checked += 1
    p = lpp.standard_reading(v["temperature"], v["humidity"], v["battery"])
    if h(p) != v["hex"]:
        fail(v["name"], h(p))
    if len(p) > 12:
        fail(v["name"], f"{len(p)} bytes")

for v in vec["aged"]:
    # the sample-age encoding: an unsigned port-1 frame as it goes out after waiting
    checked += 1
    plain = unhexlify(v["unsigned_in"])
    # as the journal holds it: port 255 (_PORT_SAMPLED), the sample time (any), then the readings
    sampled = plain[:13] + b"\xff" + b"\x00\x00\x01\x00" + plain[14:]
    got = h(rf.aged(sampled, v["age_s"]))
    if got != v["unsigned_out"]:
        fail("aged " + v["name"], got)

for v in vec["aged"][:1]:
    checked += 1
    got = h(rf.aged(sampled, 0))  # not aged: the plain port-1 frame
    if got != v["unsigned_in"]:
        fail("sent fresh", got)

for f in failures:
    print("FAIL", f)
print("OK", checked)
