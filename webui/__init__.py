"""The Fieldpost web panel and JSON API (Flask), served by cheroot (HTTP or HTTPS) on the site LAN.

The names below are imported on first use, so ``webui.config`` (read by `fieldpost config`)
does not load Flask.
"""

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from webui.app import create_app

        return create_app
    if name == "serve":
        from webui.server import serve

        return serve
    raise AttributeError(f"module 'webui' has no attribute {name!r}")
