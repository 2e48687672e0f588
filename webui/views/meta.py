"""What browsers ask for by themselves: the favicon and the web app manifest (no session needed)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, send_from_directory, url_for

bp = Blueprint("meta", __name__)


@bp.route("/favicon.ico")
def favicon():
    response = send_from_directory(
        current_app.static_folder + "/icons", "favicon.ico", mimetype="image/x-icon"
    )
    response.cache_control.max_age = 86400
    return response


@bp.route("/manifest.webmanifest")
def manifest():
    response = jsonify(
        {
            "name": "Fieldpost panel",
            "short_name": "Fieldpost",
            "start_url": url_for("overview.index"),
            "scope": "/",
            "display": "standalone",
            "background_color": "#ffffff",
            "theme_color": "#1f5fbf",
            "icons": [
                {
                    "src": url_for("static", filename=f"icons/icon-{n}.png"),
                    "sizes": f"{n}x{n}",
                    "type": "image/png",
                }
                for n in (192, 512)
            ],
        }
    )
    response.mimetype = "application/manifest+json"
    return response
