"""Make the panel's icons (a white antenna mast with two waves on the panel's blue), pure Python."""
# Run from the repository root: python3 scripts/make_panel_icons.py (writes webui/static/icons/).
import struct, zlib, math

BLUE = (31, 95, 191, 255)
WHITE = (255, 255, 255, 255)

def pixel(x, y, n):
    # normalised coordinates 0..1
    u, v = (x + 0.5) / n, (y + 0.5) / n
    r = 0.18  # rounded corners
    cx = min(max(u, r), 1 - r); cy = min(max(v, r), 1 - r)
    if (u - cx) ** 2 + (v - cy) ** 2 > r * r:
        return (0, 0, 0, 0)
    # mast
    if abs(u - 0.5) < 0.045 and 0.38 < v < 0.82:
        return WHITE
    if abs(v - 0.82) < 0.04 and abs(u - 0.5) < 0.18:
        return WHITE
    d = math.hypot(u - 0.5, v - 0.36)
    if d < 0.07:
        return WHITE
    # two arcs above the top
    if v < 0.42:
        for radius in (0.17, 0.28):
            if abs(d - radius) < 0.035 and abs(u - 0.5) < radius * 0.8:
                return WHITE
    return BLUE

def png(n):
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y, n)) for x in range(n)) for y in range(n))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", n, n, 8, 6, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")

def ico(images):
    head = struct.pack("<HHH", 0, 1, len(images))
    offset = 6 + 16 * len(images)
    entries, data = b"", b""
    for n, blob in images:
        entries += struct.pack("<BBBBHHII", n % 256, n % 256, 0, 0, 1, 32, len(blob), offset + len(data))
        data += blob
    return head + entries + data

out = "webui/static/icons/"
for n in (192, 512, 180):
    open(out + f"icon-{n}.png", "wb").write(png(n))
open(out + "favicon.ico", "wb").write(ico([(16, png(16)), (32, png(32)), (48, png(48))]))
