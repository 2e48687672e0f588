# Small durable files: written to a temporary name, then renamed over the old
# one, so a power cut leaves either the old or the new content, never a mix.
# Each carries a CRC-32 so a damaged file is noticed instead of trusted.
import os
import struct
from binascii import crc32


def firmware_root():
    # fp/store.py (or .mpy) -> the folder holding fp/: "" on a board, the bundle on the unix port.
    # Here, not in fp/update.py, so a node can look for an update's files without loading the updater.
    here = __file__.rsplit("/", 2)
    return here[0] + "/" if len(here) == 3 else ""


def unload(name):
    # Forget a module so the GC can take its code back (an import brings it back): code a board
    # runs once, or rarely, is not kept in a 64K heap. Here as every firmware module has store.
    import sys
    sys.modules.pop(name, None)
    pkg, _, leaf = name.rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None and hasattr(parent, leaf):
        delattr(parent, leaf)


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def replace(tmp, path):
    # POSIX and littlefs rename over an existing file atomically; FAT refuses,
    # so there the old file goes first (the reader then falls back to tmp).
    try:
        os.rename(tmp, path)
    except OSError:
        remove(path)
        os.rename(tmp, path)


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.write(struct.pack(">I", crc32(data) & 0xFFFFFFFF))
        f.flush()  # on the data before the rename makes it current (fsync on the unix port)
    replace(tmp, path)


def _read_checked(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if len(raw) < 4:
        return None
    body = raw[:-4]
    if struct.unpack(">I", raw[-4:])[0] != crc32(body) & 0xFFFFFFFF:
        return None
    return body


def read_atomic(path):
    # The content, or None if neither the file nor an interrupted rename's tmp holds a valid copy.
    body = _read_checked(path)
    if body is None:
        body = _read_checked(path + ".tmp")
    return body
