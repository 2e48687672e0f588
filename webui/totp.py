"""The optional second factor for admins: time-based one-time passwords (RFC 6238, pyotp).

An admin turns it on under Account by entering a code from their authenticator app for a new
secret; from then on a login asks for a code after the password. ``fieldpost users set-password``
(or an admin resetting the password) does not remove it; ``fieldpost users reset-totp`` does.
"""

from __future__ import annotations

import hmac
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
    return accepted_step(secret, code, now=now) is not None


def accepted_step(secret: str | None, code: str | None, *, now: float) -> int | None:
    """The 30-second step whose code ``code`` is (this one, the one before or after), or None.
    A login keeps the step it accepted, so a code seen over someone's shoulder works only once."""
    code = (code or "").replace(" ", "")
    if not secret or not _CODE_RE.match(code):
        return None
    otp = pyotp.TOTP(secret)
    step = otp.timecode(_utc(now))
    for candidate in (step, step - 1, step + 1):
        if hmac.compare_digest(otp.generate_otp(candidate), code):
            return candidate
    return None


def _utc(now: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(now, UTC)


def code_at(secret: str, now: float) -> str:
    """The code an authenticator shows at ``now`` (tests and the CLI's check)."""
    return pyotp.TOTP(secret).at(int(now))
