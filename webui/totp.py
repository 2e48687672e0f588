"""The optional second factor for admins: time-based one-time passwords (RFC 6238, pyotp).

An admin turns it on under Account by entering a code from their authenticator app for a new
secret; from then on a login asks for a code after the password. ``fieldpost users set-password``
(or an admin resetting the password) does not remove it; ``fieldpost users reset-totp`` does.
"""

from __future__ import annotations

import re

import pyotp

ISSUER = "Fieldpost"
_CODE_RE = re.compile(r"^\d{6}$")


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def verify(secret: str | None, code: str | None, *, now: float) -> bool:
    """True when ``code`` is the current code (or the one before or after: clocks drift)."""
    code = (code or "").replace(" ", "")
    if not secret or not _CODE_RE.match(code):
        return False
    return pyotp.TOTP(secret).verify(code, for_time=int(now), valid_window=1)


def code_at(secret: str, now: float) -> str:
    """The code an authenticator shows at ``now`` (tests and the CLI's check)."""
    return pyotp.TOTP(secret).at(int(now))
