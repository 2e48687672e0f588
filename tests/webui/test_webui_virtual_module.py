"""End to end: real firmware (a node and a bridge under MicroPython, radio on loopback UDP, the bridge's
UART on a pty), the real edge daemon with the panel attached to it (`webui.service:attach`, as
`fieldpost run` does), and headless Chromium.

- the overview shows the node's reading within 5 s of the daemon committing it;
- a downlink queued in the browser reaches the node, which applies it; its status turns to acked.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from edge.store import connect
from edge.store.query import ReadingReader
from tests.conftest import wait_until
from tests.sitekit import NODE_ID, register_modules
from tests.webui.browser import CHROMIUM, expect, launch, log_in, offline_page
from tests.webui.helpers import make_user
from tests.webui.sitepanel import newest_reading, panel_site

pytestmark = [
    pytest.mark.firmware,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]


def shown_fcnt(row) -> int:
    """The frame counter the overview row shows for the module's last reading ('#123'), or -1."""
    match = re.search(r"#(\d+)", row.locator(".last-reading").inner_text())
    return int(match.group(1)) if match else -1


def test_virtual_module_reading_and_downlink_in_the_browser(tmp_path, virtual_module):
    db_path = str(tmp_path / "fieldpost.db")
    conn = connect(db_path)
    from edge.store import migrate

    migrate(conn)
    reader = ReadingReader(conn)
    register_modules(
        conn,
        now=time.time(),
        node={"name": "virtual node", "interval_s": 10},
        bridge={"name": "virtual bridge"},
    )
    make_user(db_path, "oscar", "operator")
    with panel_site(tmp_path, virtual_module, db_path) as (site, base):
        site.start_node()
        wait_until(lambda: newest_reading(reader), timeout=30, what="the node's first reading")
        with launch() as browser, offline_page(browser) as page:
            log_in(page, base)
            row = page.locator(f"#device-{NODE_ID}")
            expect(row).to_contain_text("online")
            expect(page.locator("body")).to_have_attribute("data-live", "connected")
            # The next reading the node sends, from the moment the edge has committed it.
            before = newest_reading(reader).id
            fresh = wait_until(
                lambda: (r := newest_reading(reader)) and r.id > before and r,
                timeout=20,
                what="a new reading",
            )
            committed = time.monotonic()
            # The node keeps sending (every 2 s): the row may already show a newer frame than this one.
            while shown_fcnt(row) < fresh.fcnt and time.monotonic() - committed < 5.0:
                time.sleep(0.05)
            assert time.monotonic() - committed < 5.0
            temperature = next(v for v in reader.values(fresh) if v["name"] == "temperature")
            assert temperature["unit"] == "°C"

            # A downlink from the device page, applied by the real firmware.
            page.goto(f"{base}/devices/{NODE_ID}")
            page.get_by_label("Command").select_option("set_interval")
            page.get_by_label("Interval (seconds, 10 to 86400)").fill("20")
            page.get_by_role("button", name="Queue downlink").click()
            expect(page.locator(".flash")).to_contain_text("queued")
            dl_id = conn.execute("SELECT max(id) FROM downlinks").fetchone()[0]
            expect(page.locator(f"#downlink-{dl_id} .dl-status")).to_have_text("acked", timeout=30_000)
        assert json.loads((site.node_dir / "config.json").read_text())["interval"] == 20
        statuses = [
            r[0]
            for r in conn.execute(
                "SELECT msg_id FROM outbox WHERE kind = 'downlink_status' AND ref_id = ? ORDER BY id",
                (dl_id,),
            )
        ]
        assert statuses == [f"downlink:{dl_id}:{s}" for s in ("queued", "sent", "acked")]
    reader.close()
    conn.close()
