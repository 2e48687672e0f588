# Runs under `micropython` in a scratch directory: the node's LoRaWAN activation
# (fp/lorawan/otaa.py, join.py) against the edge's join server, whose answers the
# pytest side computed with edge/lorawan (argv[1]: JSON). Prints "OK <n>" or FAIL lines.
import json
import struct
import sys
from binascii import unhexlify

from fp import config
from fp.lorawan import frames as F
from fp.lorawan.otaa import LoRaWAN

case = json.load(open(sys.argv[1]))
failures = []
checked = 0


def check(ok, what):
    global checked
    checked += 1
    if not ok:
        failures.append("FAIL " + what)


cfg = config.validate({"id": case["dev_eui"], "key": case["app_key"], "join_eui": case["join_eui"]})
lw = LoRaWAN(cfg)
check(not lw.joined, "a new node has no session")
nonces = []
for _ in range(3):
    req = lw.join_request()
    nonces.append(struct.unpack_from("<H", req, 17)[0])
check(nonces == [1, 2, 3], "DevNonce counts from 1: %r" % (nonces,))
# a reboot (a new object over the same flash) never sends a DevNonce again
lw = LoRaWAN(cfg)
req = lw.join_request()
check(struct.unpack_from("<H", req, 17)[0] > 3, "DevNonce after a reboot above those used")
check(req.hex() == case["join_request"], "join request as the edge expects: " + req.hex())
# the edge's join accept (for this DevNonce) opens, and the session is kept across a reboot
lw.accept(unhexlify(case["join_accept"]))
check(lw.joined and lw.session.devaddr == case["devaddr"], "joined with the edge's DevAddr")
ann = lw.announcement(7)
check(ann.hex() == case["announcement"], "session start frame: " + ann.hex())
lw.set_announced()
lw = LoRaWAN(cfg)
check(lw.joined and lw.announced and lw.base == 6, "session kept across a reboot")
record = bytes([0x40]) + unhexlify(case["dev_eui"]) + struct.pack(">IB", 9, 1) + unhexlify(case["reading"])
check(lw.uplink(record).hex() == case["uplink_fcnt3"], "record 9 goes out at FCnt 3")
# downlinks: the edge's ACK opens once; the same frame again is a replay
ack, port, data = lw.open_downlink(unhexlify(case["ack0"]))
check(ack and port is None, "ACK opened")
try:
    lw.open_downlink(unhexlify(case["ack0"]))
    check(False, "a replayed downlink accepted")
except F.FrameError as e:
    check(e.args[0] == "fcnt", "replay refused as fcnt: %r" % (e.args,))
# a new AppKey in config.json: the old session is not used
cfg2 = dict(cfg)
cfg2["key"] = "ff" * 16
check(not LoRaWAN(cfg2).joined, "a session belongs to its AppKey")
for line in failures:
    print(line)
print("OK %d" % checked)
