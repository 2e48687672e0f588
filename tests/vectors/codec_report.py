# Runs the FIRMWARE frame codec (firmware/fp/frame.py) over the golden vectors and prints
# what it produced as one JSON document; test_link_vectors.py compares that with the
# vectors. Runs unchanged under the `micropython` command and under CPython, so the same
# code checks the codec on both interpreters:
#     micropython tests/vectors/codec_report.py <vectors dir>   (MICROPYPATH has firmware/)
import json
import sys
from binascii import hexlify, unhexlify

from fp import frame as F


def hx(b):
    return hexlify(bytes(b)).decode()


def load(d, name):
    with open(d + "/" + name) as f:
        return json.load(f)


def decode_all(deframer, data):
    out = []
    for ftype, seq, payload in deframer.feed(data):
        out.append([ftype, seq, hx(payload)])
    return out


def report(d):
    frames = load(d, "frames.json")["frames"]
    bad = load(d, "bad_frames.json")["frames"]
    cases = load(d, "cobs.json")["cases"]
    rep = {"implementation": sys.implementation.name, "frames": {}, "bad": {}, "cobs": {}}
    for v in frames:
        wire = unhexlify(v["wire"])
        one_shot = decode_all(F.Deframer(), wire)
        dfr = F.Deframer()
        bytewise = []
        for i in range(len(wire)):  # a byte at a time, as a slow UART delivers them
            bytewise.extend(decode_all(dfr, wire[i : i + 1]))
        rep["frames"][v["name"]] = {
            "encoded": hx(F.encode(v["type"], v["seq"], unhexlify(v["payload"]))),
            "decoded": one_shot,
            "bytewise": bytewise,
        }
    good_wire = unhexlify(frames[0]["wire"])
    for v in bad:
        errors = []
        dfr = F.Deframer(errors.append)
        # the bad bytes, then a good frame: the codec must reject the first and carry on
        got = decode_all(dfr, unhexlify(v["wire"]) + good_wire)
        rep["bad"][v["name"]] = {"errors": errors, "counters": dfr.errors, "after": got}
    for c in cases:
        raw = unhexlify(c["raw"])
        enc = unhexlify(c["encoded"])
        rep["cobs"][c["name"]] = {"encoded": hx(F.cobs_encode(raw)), "decoded": hx(F.cobs_decode(enc))}
    return rep


if __name__ == "__main__":
    print(json.dumps(report(sys.argv[1])))
