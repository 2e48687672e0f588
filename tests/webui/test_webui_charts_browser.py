"""Device charts in headless Chromium on seeded data (empty, one point, 10,000 points over 30 days
with a gap and two spikes), the site in Asia/Kolkata (UTC+5:30, so a tick on a UTC hour would be
off by half an hour): the axis spans the chosen range with ticks on the site's hours and midnights,
the downsampled chart still reaches the spikes, counters sit in the collapsed Diagnostics, and
dragging across a chart zooms in."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from edge.store import connect, migrate, transaction
from tests.webui.browser import CHROMIUM, expect, launch, log_in, offline_page, serve_panel
from tests.webui.helpers import Module, add_device, make_user
from webui import settings_store

REPO = Path(__file__).resolve().parents[2]
ZONE = "Asia/Kolkata"
EMPTY, ONE, DENSE = "e0e0000000000001", "0e00000000000002", "de5e000000000003"
SPIKE, DIP = 95.5, -40.3

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("charts")
    db_path = str(tmp / "fieldpost.db")
    conn = connect(db_path)
    migrate(conn)
    with transaction(conn):
        settings_store.put(conn, "site.timezone", ZONE, by="test", now=time.time())
    conn.close()
    make_user(db_path, "oscar", "operator")
    now = time.time()
    for dev in (EMPTY, ONE, DENSE):
        add_device(db_path, dev, name=dev[:4], interval_s=300)
    Module(db_path, ONE).reading(temperature=6.5, now=now - 7200)
    dense = Module(db_path, DENSE)
    step = 30 * 86400 / 10_000
    with dense.batch():
        for i in range(10_000):
            at = now - 30 * 86400 + i * step
            if now - 12 * 86400 < at < now - 10 * 86400:
                continue  # two silent days
            value = {3000: SPIKE, 7000: DIP}.get(i, 20.0 + (i % 50) * 0.1)
            dense.reading(temperature=value, humidity=40 + i % 20, now=at)
        dense._send(3, b'{"u": 3600, "a": 1.5, "m": 2}', rssi=-80, snr=7.0, now=now - 600)
    with serve_panel(db_path, str(tmp / "panel.log"), REPO) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with launch() as b:
        yield b


@pytest.fixture
def page(browser, panel):
    with offline_page(browser, viewport={"width": 1280, "height": 900}) as pg:
        log_in(pg, panel)
        yield pg


def _show(page, panel, device, range_name):
    page.goto(f"{panel}/devices/{device}")
    section = page.locator("section.charts")
    expect(section).to_have_attribute("data-loaded", "range=24h")
    if range_name != "24h":
        page.locator(f"button[data-range='{range_name}']").click()
        expect(section).to_have_attribute("data-loaded", f"range={range_name}")
    return section


def _axis(figure):
    ticks = json.loads(figure.get_attribute("data-ticks"))
    labels = json.loads(figure.get_attribute("data-tick-labels"))
    return ticks, labels


def _local(t):
    return datetime.fromtimestamp(t, ZoneInfo(ZONE))


def test_dense_30_days_ticks_on_site_midnights_and_spikes_kept(page, panel):
    section = _show(page, panel, DENSE, "30d")
    start, end = float(section.get_attribute("data-start")), float(section.get_attribute("data-end"))
    assert end - start == pytest.approx(30 * 86400, abs=1)
    assert section.get_attribute("data-timezone") == ZONE
    assert section.get_attribute("data-downsampled") == "true"
    figures = section.locator(".chart-area figure.chart")
    expect(figures).to_have_count(3)  # °C, % and V: measures only
    expect(figures.first.locator("figcaption")).to_have_text("temperature (°C)")
    ticks, labels = _axis(figures.first)
    assert len(ticks) >= 3 and len(labels) == len(ticks)
    assert all(start <= t <= end for t in ticks), (start, ticks, end)
    assert all((_local(t).hour, _local(t).minute) == (0, 0) for t in ticks), [str(_local(t)) for t in ticks]
    low, high = json.loads(figures.first.get_attribute("data-y-range"))
    assert high >= SPIKE and low <= DIP  # the min/max band reaches the one-reading spikes
    diagnostics = section.locator("details.diagnostics")
    expect(diagnostics).to_be_visible()
    assert diagnostics.get_attribute("open") is None  # collapsed
    expect(diagnostics.locator("figure.chart")).to_have_count(3)  # uptime, airtime, bad_mic


def test_24_hours_ticks_on_the_sites_whole_hours(page, panel):
    section = _show(page, panel, DENSE, "24h")
    start, end = float(section.get_attribute("data-start")), float(section.get_attribute("data-end"))
    ticks, labels = _axis(section.locator(".chart-area figure.chart").first)
    assert ticks and all(start <= t <= end for t in ticks)
    assert all(_local(t).minute == 0 for t in ticks), [str(_local(t)) for t in ticks]
    # the labels are the site's clock: an hour label shows the local hour (12-hour or 24-hour style)
    hour_labels = [
        (t, lab) for t, lab in zip(ticks, labels, strict=True) if ":" in lab or lab.endswith(("am", "pm"))
    ]
    for t, lab in hour_labels:
        shown = int(lab.split(":")[0].rstrip("apm").split()[-1])
        assert shown in (_local(t).hour, _local(t).hour % 12 or 12), (lab, str(_local(t)))


def test_one_point_and_empty(page, panel):
    section = _show(page, panel, ONE, "24h")
    start, end = float(section.get_attribute("data-start")), float(section.get_attribute("data-end"))
    figure = section.locator(".chart-area figure.chart").first
    ticks, _ = _axis(figure)
    assert ticks and all(start <= t <= end for t in ticks)  # not years away from the one reading
    low, high = json.loads(figure.get_attribute("data-y-range"))
    assert low < 6.5 < high
    section = _show(page, panel, EMPTY, "7d")
    expect(section.locator(".chart-area")).to_contain_text("No values in this period.")
    expect(section.locator("figure.chart")).to_have_count(0)


def test_drag_to_zoom_and_pan(page, panel):
    section = _show(page, panel, DENSE, "7d")
    over = section.locator(".chart-area figure.chart").first.locator(".u-over")
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    expect(section).to_have_attribute("data-loaded", re.compile(r"^start="))
    start, end = float(section.get_attribute("data-start")), float(section.get_attribute("data-end"))
    assert 0.15 * 7 * 86400 < end - start < 0.25 * 7 * 86400
    page.get_by_role("button", name="◀ Earlier").click()
    expect(section).not_to_have_attribute("data-start", str(start))
    assert float(section.get_attribute("data-start")) == pytest.approx(start - (end - start) / 2, abs=1)


def test_overview_sparklines_and_the_sync_backlog_chart(page, panel):
    page.goto(panel + "/")
    expect(page.locator(f"#device-{DENSE} svg.spark polyline").first).to_be_attached()
    page.goto(panel + "/sync")  # the panel's sampler took a sample as it started
    expect(page.locator("#backlog-chart")).to_have_attribute("data-drawn", "true")
    expect(page.locator("#backlog-chart canvas").first).to_be_visible()
