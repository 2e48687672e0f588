"""Where a ``next=`` parameter may send a browser after login: only paths on this site.

Browsers are lenient: they drop tabs and newlines inside URLs, read ``\\`` as ``/``, and a path
starting ``//`` names another host. So a target is accepted only when it is a plain absolute path
(``/...``), has no scheme or host, no control characters or backslashes, and stays so after percent
decoding (a later hop might decode it once more).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

_DECODE_ROUNDS = 3


def _plain_path(target: str) -> bool:
    if not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def is_safe(target: str | None) -> bool:
    if not target or len(target) > 2000:
        return False
    current = target
    for _ in range(_DECODE_ROUNDS):
        if not _plain_path(current):
            return False
        decoded = unquote(current)
        if decoded == current:
            return True
        current = decoded
    return False  # still encoded after several rounds: nobody needs that


def safe_next(target: str | None, fallback: str) -> str:
    return target if is_safe(target) else fallback
