"""The panel in headless Chromium (Playwright), served by cheroot in its own process.

Readings are written by the edge's ingest code (edge.ingest.process.handle_uplink: real frames with
MICs, stored raw, as the daemon stores them) from the test process, so the panel sees them only through the shared
SQLite file, as it sees the daemon's. Every request the browser makes to anything but 127.0.0.1 is
blocked and recorded; each test ends by asserting there was none.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import pytest

from edge.store import connect
from tests.webui.browser import (
    CHROMIUM,
    expect,
    launch,
    offline_page,
    serve_panel,
    unlabelled_controls,
)
from tests.webui.browser import log_in as browser_log_in
from tests.webui.helpers import Module, add_device, make_user, raise_alarm

REPO = Path(__file__).resolve().parents[2]
# Screenshots go to docs/screenshots only when asked (FIELDPOST_SCREENSHOTS=1), so a normal test run
# leaves the working tree clean; otherwise they are still taken, into the test's tmp dir.
SCREENSHOTS = REPO / "docs" / "screenshots"

COLD_ROOM, TANK, GATE = "c01d0000000000a1", "7a4b000000000002", "9a7e000000000003"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")


def _seed(db_path: str) -> dict[str, Module]:
    make_user(db_path, "alice", "admin")
    make_user(db_path, "oscar", "operator")
    now = time.time()
    add_device(db_path, COLD_ROOM, name="Cold room", interval_s=300)
    add_device(db_path, TANK, name="Water tank", interval_s=300)
    add_device(db_path, GATE, name="<script>alert(1)</script>", interval_s=300)
    modules = {dev: Module(db_path, dev) for dev in (COLD_ROOM, TANK, GATE)}
    # A day of history every 30 minutes, so the charts have something to draw.
    with modules[COLD_ROOM].batch() as cold_room:
        for i in range(48, 0, -1):
            cold_room.reading(
                temperature=3.0 + (i % 12) * 0.25,
                humidity=60 + i % 7,
                battery=3.65,
                rssi=-88,
                snr=6.5,
                now=now - i * 1800,
            )
    with modules[TANK].batch() as tank:
        for i in range(48, 0, -1):
            tank.reading(
                temperature=11.0 + (i % 8) * 0.5,
                humidity=80,
                battery=3.1,
                rssi=-104,
                snr=-3.25,
                now=now - i * 1800,
            )
    modules[GATE].reading(temperature=18.0, battery=3.9, now=now - 3 * 86400)  # silent for days: offline
    modules[COLD_ROOM].reading(temperature=4.2, now=now - 30)
    modules[TANK].reading(temperature=12.5, battery=3.1, now=now - 60)
    conn = connect(db_path)
    conn.execute("BEGIN")
    from edge import registry

    registry.note_unknown(
        conn,
        "feedfacecafe0001",
        rssi=-97,
        bridge="b0b0b0b0b0b0b0b0",
        frame=b"\x40",
        now=now,
    )
    conn.execute("COMMIT")
    conn.close()
    return modules


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    """A seeded database and `python -m webui serve` on a free loopback port."""
    from edge.store import migrate

    tmp = tmp_path_factory.mktemp("panel")
    db_path = str(tmp / "fieldpost.db")
    conn = connect(db_path)
    migrate(conn)
    conn.close()
    modules = _seed(db_path)
    with serve_panel(db_path, str(tmp / "panel.log"), REPO) as url:
        yield {"url": url, "db": db_path, "modules": modules, "tmp": tmp}


@pytest.fixture(scope="module")
def browser():
    with launch() as b:
        yield b


@pytest.fixture
def page(browser, panel):
    with offline_page(browser) as pg:
        yield pg


def log_in(page, panel, username="oscar"):
    browser_log_in(page, panel["url"], username)


def screenshot(page, panel, name: str) -> Path:
    folder = SCREENSHOTS if os.environ.get("FIELDPOST_SCREENSHOTS") == "1" else panel["tmp"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 5000
    return path


def test_login_rejects_a_wrong_password(page, panel):
    page.goto(panel["url"] + "/login")
    page.get_by_label("User name").fill("oscar")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")


def test_overview_shows_a_new_reading_within_5_s(page, panel):
    log_in(page, panel)
    row = page.locator(f"#device-{COLD_ROOM}")
    expect(row).to_contain_text("online")
    expect(page.locator(f"#device-{GATE}")).to_contain_text("offline")
    expect(page.locator(f"#device-{GATE}")).to_contain_text("<script>alert(1)</script>")  # shown as text
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    written = time.monotonic()
    panel["modules"][COLD_ROOM].reading(temperature=-7.5, rssi=-67, snr=9.75)
    expect(row).to_contain_text("-7.5 °C", timeout=5_000)
    seen_after = time.monotonic() - written
    assert seen_after < 5.0
    expect(row).to_contain_text("-67 dBm")


def test_send_a_downlink_and_see_its_status_change(page, panel):
    log_in(page, panel)
    page.goto(f"{panel['url']}/devices/{TANK}")
    page.get_by_label("Command").select_option("set_interval")
    page.get_by_label("Interval (seconds, 10 to 86400)").fill("5")
    page.get_by_role("button", name="Queue downlink").click()
    expect(page.locator("#seconds-error")).to_contain_text("outside 10 .. 86400")  # message next to the field
    page.get_by_label("Interval (seconds, 10 to 86400)").fill("600")
    page.get_by_role("button", name="Queue downlink").click()
    expect(page.locator(".flash")).to_contain_text("queued")
    dl_id = connect(panel["db"]).execute("SELECT max(id) FROM downlinks").fetchone()[0]
    status = page.locator(f"#downlink-{dl_id} .dl-status")
    expect(status).to_have_text("queued")
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    module = panel["modules"][TANK]
    module.reading(temperature=12.0)  # the downlink rides on the ACK of this uplink
    expect(status).to_have_text("sent", timeout=5_000)
    module.downlink_result(dl_id, 0)  # the node applied it
    expect(status).to_have_text("acked", timeout=5_000)


def test_acknowledge_an_alarm(page, panel):
    log_in(page, panel)
    page.goto(panel["url"] + "/alarms")
    expect(page.locator("body")).to_have_attribute("data-live", "connected")
    alarm_id = raise_alarm(panel["db"], device_id=COLD_ROOM, message="cold room above 8 °C for 10 min")
    row = page.locator(f"#alarm-{alarm_id}")
    expect(row).to_contain_text("cold room above 8 °C", timeout=5_000)  # arrives live
    row.get_by_role("button", name=f"Acknowledge alarm {alarm_id}").click()
    expect(page.locator(".flash")).to_contain_text(f"Alarm {alarm_id} acknowledged.")
    expect(page.locator(f"#alarm-{alarm_id} .alarm-state")).to_have_text("acknowledged")
    state = (
        connect(panel["db"])
        .execute("SELECT state, acknowledged_by FROM alarms WHERE id = ?", (alarm_id,))
        .fetchone()
    )
    assert tuple(state) == ("acknowledged", "oscar")


def test_export_csv(page, panel):
    log_in(page, panel)
    page.goto(panel["url"] + "/export")
    page.get_by_label("Module").select_option(TANK)
    now = time.time()
    page.get_by_label("From (UTC)").fill(str(int(now - 6 * 3600)))
    page.get_by_label("Until (UTC)").fill(str(int(now + 60)))
    with page.expect_download() as info:
        page.get_by_role("button", name="Download").click()
    path = info.value.path()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    conn = connect(panel["db"])
    expected = conn.execute(
        "SELECT count(*) FROM reading_list WHERE device_id = ? AND received_at >= ? AND port = 1",
        (TANK, now - 6 * 3600),
    ).fetchone()[0]
    temperatures = [r for r in rows if r["name"] == "temperature"]
    assert len(temperatures) == expected >= 12
    assert {r["unit"] for r in temperatures} == {"°C"}
    assert {r["device_id"] for r in rows} == {TANK}


def test_main_pages_load_offline_and_screenshots(page, panel):
    """Every main page with the network blocked to all but 127.0.0.1; charts drawn by the vendored uPlot."""
    log_in(page, panel, "alice")
    shots = {
        "overview": "/",
        "alarms": "/alarms?state=all",
        "quarantine": "/quarantine",
        "sync": "/sync",
        "export": "/export",
        "settings": "/settings",
    }
    raise_alarm(
        panel["db"],
        device_id=TANK,
        severity="warning",
        rule="battery-low",
        message="battery below 3.2 V",
        value=3.1,
    )
    for name, path in shots.items():
        page.goto(panel["url"] + path)
        expect(page.locator("main h1")).to_be_visible()
        assert unlabelled_controls(page) == [], name
        screenshot(page, panel, name)
    page.set_viewport_size({"width": 1100, "height": 1000})
    page.goto(f"{panel['url']}/devices/{COLD_ROOM}")
    expect(page.locator(".chart canvas").first).to_be_visible()
    assert page.locator(".chart-area .chart").count() == 3  # temperature, humidity, battery: one per unit
    assert unlabelled_controls(page) == []
    screenshot(page, panel, "device")
    page.get_by_role("button", name="7 days").click()
    expect(page.locator("section.charts")).to_have_attribute("data-loaded", "range=7d")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(panel["url"] + "/")
    expect(page.locator(f"#device-{COLD_ROOM}")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, "the overview scrolls sideways on a phone"
    screenshot(page, panel, "overview-phone")
