"""The Fieldpost web panel and JSON API (Flask), served by waitress on the site LAN."""

from webui.app import create_app
from webui.server import serve

__all__ = ["create_app", "serve"]
