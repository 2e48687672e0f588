"""Where the data folders are: ``firmware/``, ``hardware/`` and ``packaging/``.

In a checkout (and an editable install) they sit next to the Python packages. An
installed wheel carries them inside this package, under ``edge/_assets/`` (setup.py
copies them there at build time), so `fieldpost provision module`, the board profiles,
the GPIO map and the unit files work from a plain ``pip install`` or the Debian package.
"""

from __future__ import annotations

from pathlib import Path

NAMES = ("firmware", "hardware", "packaging")

_INSTALLED = Path(__file__).resolve().parent / "_assets"
_CHECKOUT = Path(__file__).resolve().parents[1]


def asset_dir(name: str) -> Path:
    """The folder ``name`` (one of NAMES): the installed copy if there is one, else the checkout's."""
    if name not in NAMES:
        raise ValueError(f"unknown asset folder {name!r} (known: {', '.join(NAMES)})")
    installed = _INSTALLED / name
    return installed if installed.is_dir() else _CHECKOUT / name
