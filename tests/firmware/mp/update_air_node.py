# A LoRaWAN node's Device (ABP session, tests/firmware/mp/update_air_rx.py's) driven line by line over
# stdin by a simulation of the air (tests/bench/bench_update_air.py): the real receiver, its flash
# writes and records, no radio and no clock.
#   "r"          -> "req <hex>": the next fragment request's payload, or "req -" once all is here
#   "d <hex>"    -> "ok <1 while an update is under way> <the updater's state or ->"
#   "p <ms>"     -> "wait <ms>": how long the energy pace holds the next request back at <ms>
#   "s <ms>"     -> "ok": a request sent at <ms>, spent from the pace (fp/update_air.py fragment)
#   argv[1]: the data rate (0: SF12, 5: SF7, EU868)
import json
import sys
from binascii import hexlify, unhexlify

from fp import config, store
from fp.device import Device
from fp.fcnt import FrameCounter
from fp.journal import Journal

cfg = config.validate({"id": "0123456789abcd01", "key": "11" * 16, "dr": int(sys.argv[1]), "role": "node",
                       "board": "unix", "activation": "abp", "devaddr": "26011bda", "nwk_skey": "22" * 16,
                       "app_skey": "33" * 16})
j = Journal("journal")
dev = Device(cfg, "config.json", None, j, FrameCounter("fcnt", floor=j.max_fcnt + 1))
state_path = store.firmware_root() + ".update/state"
print("ready")
while True:
    line = sys.stdin.readline()
    if not line:
        break
    if line[0] == "r":
        req = dev.upd.request() if dev.upd is not None else None
        print("req", hexlify(req).decode() if req else "-")
    elif line[0] == "p":
        print("wait", dev.upd.paced_ms(int(line[2:])) if dev.upd is not None else 0)
    elif line[0] == "s":
        dev.upd.spend(int(line[2:]))
        print("ok")
    elif line[0] == "d":
        dev.handle_downlink(unhexlify(line[2:].strip()), None)
        st = store.read_atomic(state_path)
        print("ok", 1 if dev.upd is not None else 0, json.loads(st)["s"] if st else "-")
