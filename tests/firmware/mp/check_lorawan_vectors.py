# Runs under `micropython`: checks firmware/fp/lorawan against tests/vectors/lorawan.json.
# Prints one line per failure and "OK <count>" at the end; the pytest side asserts.
import json
import struct
import sys
from binascii import hexlify, unhexlify

from fp.lorawan import frames as F
from fp.lorawan import join as J
from fp.lorawan.crypto import Cmac, aes

vec = json.load(open(sys.argv[1]))
checked = 0
failures = []


def h(b):
    return hexlify(b).decode()


def fail(name, msg):
    failures.append("FAIL %s: %s" % (name, msg))


def le3(n):
    return struct.pack("<I", n)[:3]


for v in vec["cmac"]:
    checked += 1
    got = h(Cmac(unhexlify(v["key"])).digest(unhexlify(v["msg"])))
    if got != v["cmac"]:
        fail("cmac %d bytes" % (len(v["msg"]) // 2), got)

for v in vec["data_frames"]:
    checked += 1
    s = F.Session(v["devaddr"], unhexlify(v["nwk_skey"]), unhexlify(v["app_skey"]))
    built = h(s.build(v["mhdr"], v["fcnt"], v["fport"], unhexlify(v["payload"]), fctrl=v["fctrl"]))
    if built != v["hex"]:
        fail(v["name"], "built " + built)
    frame = unhexlify(v["hex"])
    mhdr, devaddr, fctrl, fcnt16, fopts, fport, _ = F.parse(frame)
    if (mhdr, devaddr, fctrl, fcnt16, fport) != (
        v["mhdr"],
        v["devaddr"],
        v["fctrl"],
        v["fcnt"] & 0xFFFF,
        v["fport"],
    ):
        fail(v["name"], "parsed %r" % ((mhdr, devaddr, fctrl, fcnt16, fport),))
    try:
        got = s.open(frame, v["fcnt"])
        if h(got[4]) != v["payload"]:
            fail(v["name"], "decrypted " + h(got[4]))
    except F.FrameError as e:
        fail(v["name"], "open: %r" % (e.args,))
    # one bit flipped anywhere must fail the MIC
    bad = bytearray(frame)
    bad[len(bad) // 2] ^= 1
    try:
        s.open(bytes(bad), v["fcnt"])
        fail(v["name"], "a flipped bit passed the MIC")
    except F.FrameError as e:
        if e.args[0] not in ("mic", "fopts", "mtype"):
            fail(v["name"], "flipped bit: %r" % (e.args,))

for v in vec["join_requests"]:
    checked += 1
    got = h(
        J.join_request(
            Cmac(unhexlify(v["app_key"])), unhexlify(v["join_eui"]), unhexlify(v["dev_eui"]), v["dev_nonce"]
        )
    )
    if got != v["hex"]:
        fail("join request " + v["dev_eui"], got)

for v in vec["join_accepts"]:
    checked += 1
    app = Cmac(unhexlify(v["app_key"]))
    try:
        jn, net, devaddr, dl, rxd, cfl = J.open_join_accept(app, unhexlify(v["hex"]))
    except F.FrameError as e:
        fail("join accept " + v["hex"][:8], repr(e.args))
        continue
    want = (
        h(le3(v["join_nonce"])),
        h(le3(v["net_id"])),
        v["devaddr"],
        v["dl_settings"],
        v["rx_delay"],
        v["cflist"],
    )
    if (h(jn), h(net), devaddr, dl, rxd, h(cfl)) != want:
        fail("join accept " + v["hex"][:8], "fields %r" % ((h(jn), h(net), devaddr, dl, rxd, h(cfl)),))
    nwk, appk = J.session_keys(app.cipher, jn, net, v["dev_nonce"])
    if (h(nwk), h(appk)) != (v["nwk_skey"], v["app_skey"]):
        fail("join accept keys", h(nwk) + " " + h(appk))
    bad = bytearray(unhexlify(v["hex"]))
    bad[5] ^= 0x10
    try:
        J.open_join_accept(app, bytes(bad))
        fail("join accept", "a flipped bit passed the MIC")
    except F.FrameError:
        pass

for v in vec["session_keys"]:
    checked += 1
    nwk, appk = J.session_keys(
        aes(unhexlify(v["app_key"])), le3(v["join_nonce"]), le3(v["net_id"]), v["dev_nonce"]
    )
    if (h(nwk), h(appk)) != (v["nwk_skey"], v["app_skey"]):
        fail("session keys", h(nwk) + " " + h(appk))

for v in vec["fcnt"]:
    checked += 1
    got = F.full_fcnt(v["last"], v["fcnt16"])
    if got != v["full"]:
        fail("fcnt %r" % ((v["last"], v["fcnt16"]),), str(got))

for v in vec["bad_frames"]:
    checked += 1
    try:
        F.parse(unhexlify(v["hex"]))
        fail(v["name"], "accepted")
    except F.FrameError as e:
        if e.args[0] != v["reason"]:
            fail(v["name"], "reason %r" % (e.args[0],))

for line in failures:
    print(line)
print("OK %d" % checked)
