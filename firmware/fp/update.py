# Firmware updates on the module: a package (edge/fuota/package.py) is staged and checked here,
# then swapped in at the next boot, before any other firmware file is imported, and kept only
# once the new firmware has proven itself; otherwise the module rolls back by itself.
#
# Layout under the firmware root (on a board "/", where main.py lives):
#   .update/new/<path>   staged files of the package, each checked against the manifest
#   .update/old/<path>   the files the swap replaced or removed (what a rollback puts back)
#   .update/plan         what to swap: target manifest, changed, removed, added (store.write_atomic)
#   .update/state        ("received": a package that came over the air, staged at the next boot) ->
#                        "ready" -> "swapped" -> (confirmed: .update removed) or "rolled back"
#
# Every step is a rename, and every step can be done again: a power cut at any point leaves a
# state file that tells the next boot where to go on, so the module runs the old set or the new
# set, never a mix. The trial counts boots in the new firmware; after TRIAL_BOOTS without
# confirm() (a link handshake and a reading acknowledged) the old set comes back.
import json
import os
import struct

from fp import bootguard, store
from fp.store import firmware_root  # where it lives; update_rx and app import it from here

UPDATES_FROM = "0.3.0"  # the first firmware with this updater: packages need at least this
FORMAT = 1
TRIAL_BOOTS = 3
DIR = ".update"
_CHUNK = 512


class UpdateError(Exception):
    pass


def _mkdirs(path):
    at = ""
    for part in path.split("/")[:-1]:
        at = at + part + "/" if at else part + "/"
        try:
            os.mkdir(at.rstrip("/"))
        except OSError:
            pass


def sha256_file(path):
    import hashlib
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return _hex(h.digest())


def _hex(b):
    from binascii import hexlify
    return hexlify(b).decode()


def _rmtree(path):
    try:
        entries = list(os.ilistdir(path))
    except OSError:
        store.remove(path)
        return
    for entry in entries:
        child = path + "/" + entry[0]
        if entry[1] == 0x4000:
            _rmtree(child)
        else:
            store.remove(child)
    try:
        os.rmdir(path)
    except OSError:
        pass


def _copy(src, dest):
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    with open(src, "rb") as f, open(dest, "wb") as out:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            out.write(mv[:n])


def _version(text):
    return tuple(int(x) for x in text.split("."))


class Updater:
    def __init__(self, root=None, running=None):
        self.root = firmware_root() if root is None else root
        self.dir = self.root + DIR
        self.running = running

    def _p(self, name):
        return self.dir + "/" + name

    def state(self):
        body = store.read_atomic(self._p("state"))
        return json.loads(body) if body else None

    def _set_state(self, **state):
        store.write_atomic(self._p("state"), json.dumps(state).encode())

    def plan(self):
        body = store.read_atomic(self._p("plan"))
        return json.loads(body) if body else None

    # ------------------------------------------------------------------ staging

    def stage(self, package_path, board):
        # Inflate the package into .update/new, checking each file's hash; returns the target
        # version. Refuses another board, a base the module does not run, a bad hash.
        import deflate
        import hashlib
        st = self.state()
        if st and st.get("s") in ("ready", "swapped"):
            raise UpdateError("an update is already " + st["s"])
        # What an earlier attempt left goes; the state file stays: a package received over the air
        # is "received" until it is staged here, so a power cut while staging it at boot stages it
        # again at the next boot (its package file is removed only once that is done).
        for name in ("new", "old"):
            _rmtree(self._p(name))
        store.remove(self._p("plan"))
        store.remove(self.root + ".update-result")  # the result of an earlier update is history now
        _mkdirs(self._p("new/x"))
        with open(package_path, "rb") as raw:
            if raw.read(4) != b"FPUP" or raw.read(1) != bytes([FORMAT]):
                raise UpdateError("not an update package of format %d" % FORMAT)
            body = deflate.DeflateIO(raw, deflate.ZLIB)
            header = json.loads(body.readline())
            manifest = header["manifest"]
            if manifest["board"] != board:
                raise UpdateError("package for board %s, this is %s" % (manifest["board"], board))
            if self.running is not None and _version(self.running) < _version(manifest["min_previous"]):
                raise UpdateError("needs %s, runs %s" % (manifest["min_previous"], self.running))
            base = header["base"]
            if base is not None and base != self.running:
                raise UpdateError("delta from %s, runs %s" % (base, self.running))
            buf = bytearray(_CHUNK)
            for path in header["files"]:
                name = body.readline()[:-1].decode()
                if name != path:
                    raise UpdateError("package out of order at " + path)
                size = struct.unpack(">I", body.read(4))[0]
                dest = self._p("new/" + path)
                _mkdirs(dest)
                h = hashlib.sha256()
                with open(dest, "wb") as out:
                    left = size
                    while left:
                        n = body.readinto(memoryview(buf)[:min(left, _CHUNK)])
                        if not n:
                            raise UpdateError("package truncated in " + path)
                        h.update(memoryview(buf)[:n])
                        out.write(memoryview(buf)[:n])
                        left -= n
                if _hex(h.digest()) != manifest["files"][path]:
                    raise UpdateError("hash of %s does not match the manifest" % path)
        # A delta leaves the other files as they are: they must be what the manifest says.
        for path, digest in manifest["files"].items():
            if path not in header["files"]:
                try:
                    ok = sha256_file(self.root + path) == digest
                except OSError:
                    ok = False
                if not ok:
                    raise UpdateError("%s on the module is not the package's base" % path)
        added = [p for p in header["files"] if not store.exists(self.root + p)]
        plan = {"to": manifest["version"], "from": self.running, "changed": header["files"],
                "removed": header["removed"], "added": added}
        store.write_atomic(self._p("plan"), json.dumps(plan).encode())
        self._set_state(s="ready", to=manifest["version"])
        return manifest["version"]

    def received(self, package_path, board):
        # A whole package, checked against its hash, to be staged at the next boot (at_boot).
        _mkdirs(self._p("state"))
        self._set_state(s="received", pkg=package_path, board=board, running=self.running)

    # ------------------------------------------------------------------ at boot

    def at_boot(self):
        # Run before the firmware is imported. Returns what happened, for the log and STATUS.
        st = self.state()
        if not st:
            return None
        s = st.get("s")
        if s == "received":
            # A package received over the air (fp/update_air.py), checked against its hash: staged
            # here, at boot, before the firmware is loaded, when the heap is all free (inflating
            # takes a 4 KB window), then swapped in at once.
            self.running = st["running"]
            try:
                self.stage(st["pkg"], st["board"])
            except Exception as e:  # an UpdateError says why; anything else is reported the same way
                why = "stage: %s" % (e.args[0] if e.args else e)
                self._finish({"result": "refused", "to": None, "why": why})
                return "refused: " + why
            finally:
                store.remove(st["pkg"])
            st, s = self.state(), "ready"
        if s == "ready":
            self._swap(self.plan())
            self._set_state(s="swapped", to=st["to"], boots=0)
            bootguard.clear()  # crashes of the old firmware are not the new one's
            return "swapped to " + st["to"]
        if s == "swapped":
            boots = st.get("boots", 0) + 1
            if boots > TRIAL_BOOTS:
                return self.rollback("not confirmed after %d boots" % TRIAL_BOOTS)
            self._set_state(s="swapped", to=st["to"], boots=boots)
            return "trial boot %d of %s" % (boots, st["to"])
        if s == "rolling back":
            return self.rollback(st.get("why", ""))
        return None

    def _swap(self, plan):
        # A live file is never missing, even for a moment: main.py and boot.py are among them, and
        # a board without them cannot even run this redo. So each old file is copied aside (to a
        # temporary name, then renamed: a copy aside is whole or absent), then the new one is
        # renamed over it, which the file system does atomically. Steps already done are skipped.
        for path in plan["changed"]:
            live, old, new = self.root + path, self._p("old/" + path), self._p("new/" + path)
            if store.exists(new) and path not in plan["added"] and not store.exists(old):
                _mkdirs(old)
                _copy(live, old + ".tmp")
                os.rename(old + ".tmp", old)
            if store.exists(new):
                _mkdirs(live)
                store.replace(new, live)
        for path in plan["removed"]:  # gone in the new set: aside, for a rollback
            live, old = self.root + path, self._p("old/" + path)
            if store.exists(live):
                _mkdirs(old)
                store.replace(live, old)

    def rollback(self, why):
        self._set_state(s="rolling back", why=why)
        plan = self.plan()
        if plan:
            for path in plan["added"]:
                store.remove(self.root + path)
            for path in plan["changed"] + plan["removed"]:
                old = self._p("old/" + path)
                if store.exists(old):
                    store.replace(old, self.root + path)
        result = {"result": "rolled back", "to": plan["to"] if plan else None, "why": why}
        self._finish(result)
        bootguard.clear()  # the old firmware starts with a clean count, not in safe mode
        return "rolled back: " + why

    def confirm(self):
        # The new firmware works (handshake and a reading acknowledged): drop the old set.
        st = self.state()
        if st and st.get("s") == "swapped":
            self._finish({"result": "updated", "to": st["to"]})
            return True
        return False

    def _finish(self, result):
        # The result outlives the staging area (the edge reads it in STATUS); then clean up.
        store.write_atomic(self.root + ".update-result", json.dumps(result).encode())
        self._set_state(s="done")
        for name in ("new", "old"):
            _rmtree(self._p(name))
        store.remove(self._p("plan"))
        store.remove(self._p("plan.tmp"))
        _rmtree(self.dir)

    def last_result(self):
        body = store.read_atomic(self.root + ".update-result")
        return json.loads(body) if body else None


async def confirm_when_done(dev, role):
    # fp/app.py's task while a firmware is on trial after an update. It is kept once it has done its job once:
    # a bridge's link handshake, a node's reading acknowledged by the edge. Until then a reboot
    # counts a trial boot, and too many bring the old firmware back.
    import asyncio  # here, not at the top: the swap at boot (main.py) loads this file and needs no event loop
    link = getattr(role, "link", None)
    while not (dev.stats["acked"] > 0 or (link is not None and link.up)):
        await asyncio.sleep_ms(200)
    if Updater().confirm():
        from fp.device import FW_VERSION
        print("fieldpost update: confirmed", FW_VERSION)
        if dev.lw:
            dev.report_update()  # a node says so on FPort 6 (a bridge's next HELLO does)
    while True:
        await asyncio.sleep_ms(3600000)
