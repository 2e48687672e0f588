"""Every page at a phone's 360 px and a desktop's 1280 px in headless Chromium: nothing scrolls
sideways on the phone, and each page is photographed at both widths (into docs/screenshots with
FIELDPOST_SCREENSHOTS=1, else into the test's tmp dir)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.store import connect, migrate
from tests.webui.browser import CHROMIUM, expect, launch, log_in, offline_page, serve_panel
from tests.webui.helpers import raise_alarm
from tests.webui.test_webui_browser import COLD_ROOM, _seed

REPO = Path(__file__).resolve().parents[2]
PAGES = {
    "overview": "/",
    "device": f"/devices/{COLD_ROOM}",
    "modules": "/devices",
    "device-manage": f"/devices/{COLD_ROOM}/manage",
    "alarms": "/alarms?state=all",
    "rules": "/rules",
    "quarantine": "/quarantine",
    "sync": "/sync",
    "export": "/export",
    "settings": "/settings",
    "audit": "/audit",
    "account": "/account",
    "health": "/health-page",
    "notifications": "/notifications",
}

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layout")
    db_path = str(tmp / "fieldpost.db")
    conn = connect(db_path)
    migrate(conn)
    conn.close()
    _seed(db_path)
    raise_alarm(
        db_path, device_id=COLD_ROOM, severity="warning", rule="battery-low", message="battery below 3.2 V"
    )
    with serve_panel(db_path, str(tmp / "panel.log"), REPO) as url:
        yield {"url": url, "tmp": tmp}


def _folder(panel) -> Path:
    folder = REPO / "docs" / "screenshots" if os.environ.get("FIELDPOST_SCREENSHOTS") == "1" else panel["tmp"]
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("width", [360, 1280])
def test_every_page_fits_and_is_photographed(panel, width):
    folder = _folder(panel)
    overflowing = {}
    with launch() as browser, offline_page(browser, viewport={"width": width, "height": 800}) as page:
        page.goto(panel["url"] + "/login")
        page.screenshot(path=str(folder / f"login-{width}.png"))
        log_in(page, panel["url"], "alice")
        for name, path in PAGES.items():
            page.goto(panel["url"] + path)
            expect(page.locator("main h1")).to_be_visible()
            if name == "device":
                expect(page.locator(".chart-area figure.chart").first).to_be_visible()
            scroll = page.evaluate("document.documentElement.scrollWidth")
            # Every button, link and field must be reachable without scrolling sideways, also
            # inside a table that scrolls on its own.
            hidden = page.evaluate(
                "w => Array.from(document.querySelectorAll('main button, main a, main input, main select'))"
                ".filter(e => e.offsetParent !== null && e.closest('.u-legend, .uplot') === null)"
                ".filter(e => { const r = e.getBoundingClientRect(); return r.right > w + 1 || r.left < -1; })"
                ".slice(0, 5).map(e => e.tagName + ' ' + (e.textContent || e.name || '').trim().slice(0, 30))",
                width,
            )
            if scroll > width or hidden:
                overflowing[name] = (scroll, hidden)
            page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=name == "device")
            assert (folder / f"{name}-{width}.png").stat().st_size > 3000
    assert overflowing == {}, overflowing
