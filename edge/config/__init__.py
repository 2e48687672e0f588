"""The configuration: one schema for every section (see docs/config.md, generated from it).

- ``schema``: the declarative layer (``setting``, ``build``, ``Sources``, ``walk_class``);
- ``core``: the edge core's sections; other areas declare theirs where they live
  (edge/sync/config.py, edge/store/retention.py, edge/notify.py, webui/config.py, rules);
- ``root``: the whole Config, ``load`` and ``from_dict``;
- ``render``: TOML out (tomli-w), the example file; ``reference``: docs/config.md.

The names below are imported on first use: the areas' modules import ``edge.config.schema``,
and ``root`` imports them, so an eager import here would be circular.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

DEFAULT_PATH = Path("/etc/fieldpost/fieldpost.toml")
ENV_PREFIX = "FIELDPOST_"

_LAZY = {
    "Config": "root",
    "SECTIONS": "root",
    "load": "root",
    "from_dict": "root",
    "replace_db": "root",
    "check_db_folder": "root",
    "keys": "root",
    "walk": "root",
    "KNOWN_USB_IDS": "core",
    "EdgeSection": "core",
    "LinkSection": "core",
    "IngestSection": "core",
    "HttpSection": "core",
    "LogSection": "core",
    "GpioSection": "core",
    "SettingError": "schema",
    "example": "render",
    "dumps": "render",
    "toml_value": "render",
    "effective": "render",
}

__all__ = ["DEFAULT_PATH", "ENV_PREFIX", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edge.config' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"edge.config.{module}"), name)
    globals()[name] = value
    return value
