# A firmware update package received over the serial link (bridges; docs/updates.md):
#   UPDATE_OFFER  {"id": sha256 hex of the package, "size": bytes, "v": version}
#                 -> ACK result {"have": bytes already here}: the edge sends from there
#   UPDATE_CHUNK  offset (4 bytes BE) + bytes, in order (the link delivers them in order, once)
#   UPDATE_COMMIT package sha256 (32 bytes) + MIC (4 bytes, HMAC-SHA256 with the module's key
#                 over "FPUP-COMMIT" + sha256) -> the package is checked and staged (fp/update.py)
#                 -> ACK result {"staged": version}; the module then reboots into it.
# The package goes to <root>.update-pkg; <root>.update-rx records (atomically) which package and
# how many bytes are safely written, every few chunks, so a reboot or a new session resumes.
import json
import struct

from fp import store
from fp.mic import hmac_sha256, mic_equal
from fp.update import Updater, firmware_root, sha256_file
from micropython import const

_RECORD_EVERY = const(8)  # chunks between progress records (flash writes)
COMMIT_LABEL = b"FPUP-COMMIT"


class Refused(Exception):
    # args[0]: why, sent back in the NACK
    pass


class Receiver:
    def __init__(self, key, board, running, root=None):
        self.key = key
        self.board = board
        self.running = running
        self.root = firmware_root() if root is None else root
        self.pkg = self.root + ".update-pkg"
        self.rec = self.root + ".update-rx"
        body = store.read_atomic(self.rec)
        self.state = json.loads(body) if body else None  # {"id", "size", "have"}
        self._unrecorded = 0

    def _record(self):
        store.write_atomic(self.rec, json.dumps(self.state).encode())
        self._unrecorded = 0

    def offer(self, payload):
        o = json.loads(payload)
        pid, size = o["id"], int(o["size"])
        if not (isinstance(pid, str) and len(pid) == 64 and 0 < size < 4 * 1024 * 1024):
            raise Refused("bad offer")
        if self.state is None or self.state["id"] != pid or self.state["size"] != size:
            self.state = {"id": pid, "size": size, "have": 0}
            with open(self.pkg, "wb"):
                pass
            self._record()
        return json.dumps({"have": self.state["have"]}).encode()

    def chunk(self, payload):
        st = self.state
        if st is None:
            raise Refused("no offer")
        at = struct.unpack(">I", payload[:4])[0]
        data = memoryview(payload)[4:]
        if at < st["have"]:
            return  # sent again after a resume from an older record: already here
        if at != st["have"] or at + len(data) > st["size"]:
            raise Refused("chunk at %d, have %d of %d" % (at, st["have"], st["size"]))
        with open(self.pkg, "r+b") as f:
            f.seek(at)
            f.write(data)
            f.flush()
        st["have"] = at + len(data)
        self._unrecorded += 1
        if self._unrecorded >= _RECORD_EVERY or st["have"] == st["size"]:
            self._record()

    def commit(self, payload):
        st = self.state
        if st is None or st["have"] != st["size"]:
            raise Refused("incomplete: have %d of %d" % (st["have"], st["size"]) if st else "no offer")
        digest, mic = bytes(payload[:32]), bytes(payload[32:36])
        if not mic_equal(hmac_sha256(self.key, COMMIT_LABEL + digest)[:4], mic):
            raise Refused("commit MIC")
        from binascii import hexlify
        if hexlify(digest).decode() != st["id"] or sha256_file(self.pkg) != st["id"]:
            self._forget()  # damaged on the way or on flash: the next offer starts over
            raise Refused("package hash")
        try:
            version = Updater(self.root, self.running).stage(self.pkg, self.board)
        except Exception as e:  # an UpdateError says why; anything else is reported the same way
            self._forget()
            raise Refused("stage: %s" % (e.args[0] if e.args else e))
        self._forget()
        return json.dumps({"staged": version}).encode()

    def _forget(self):
        self.state = None
        store.remove(self.rec)
        store.remove(self.pkg)


def on_frame(receiver, link, ftype, seq, payload):
    # Answer one update frame on the link (ACK with the result, or NACK INVALID with the reason).
    # Returns True once a package is staged: the caller reboots into it.
    from fp import frame as fr
    staged = False
    try:
        if ftype == fr.UPDATE_OFFER:
            result = receiver.offer(payload)
        elif ftype == fr.UPDATE_CHUNK:
            result = receiver.chunk(payload) or b""
        else:
            result = receiver.commit(payload)
            staged = True
    except Refused as e:
        link.nack(seq, fr.NACK_INVALID, "update: " + e.args[0])
        return False
    except (ValueError, KeyError, TypeError, OSError) as e:
        link.nack(seq, fr.NACK_INVALID, "update: %r" % (e,))
        return False
    link.ack(seq, result)
    return staged
