# A LoRaWAN node's Device (ABP session) fed downlinks the edge built, as its radio would hand them
# over in its receive windows, under micropython; the firmware root is the bundle on MICROPYPATH.
#   update_air_rx.py <file of hex frames, one a line> <first> <last> [<region>]   (lines first..last-1;
#   EU868 DR5 unless a region is given, at its DR0)
# Prints one JSON line: what the node made of them (its update record, rejects, what it journaled).
import json
import sys
from binascii import hexlify, unhexlify

from fp import config, store
from fp.device import Device
from fp.fcnt import FrameCounter
from fp.journal import Journal

region = sys.argv[4] if len(sys.argv) > 4 else "EU868"
cfg = config.validate({"id": "0123456789abcd01", "key": "11" * 16, "dr": 5 if region == "EU868" else 0,
                       "region": region, "role": "node", "board": "unix",
                       "activation": "abp", "devaddr": "26011bda", "nwk_skey": "22" * 16,
                       "app_skey": "33" * 16})
j = Journal("journal")
dev = Device(cfg, "config.json", None, j, FrameCounter("fcnt", floor=j.max_fcnt + 1))
requests = []
first, last = int(sys.argv[2]), int(sys.argv[3])
with open(sys.argv[1]) as f:  # a line at a time: the test's frames are not the node's heap
    for n, line in enumerate(f):
        if not first <= n < last:
            continue
        if dev.upd is not None:
            requests.append(hexlify(dev.upd.request()).decode())
        dev.handle_downlink(unhexlify(line.strip()), None)
journaled = []
for i in range(len(j)):
    body = j.read(i)
    journaled.append([body[13], bytes(body[14:]).decode()])
print(json.dumps({
    "active": dev.upd is not None,
    "received": dev.upd.received() if dev.upd else None,
    "requests": requests,
    "rejects": dev.stats["rejects"], "bad_mic": dev.stats["bad_mic"],
    "journal": journaled, "reboot": dev.reboot_due,
    "state": json.loads(store.read_atomic(store.firmware_root() + ".update/state") or "null"),
    "record": store.exists(store.firmware_root() + ".update-air"),
}))
