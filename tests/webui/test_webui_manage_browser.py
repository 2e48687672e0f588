"""Device management round trip in the browser against the real daemon and real firmware: the node
is not registered (its frames wait in quarantine); an admin adds it with its key in the browser, it
appears on the overview, its readings arrive, it is renamed, its bridge shows the live link with the
node heard through it, and it is removed with a typed confirmation."""

from __future__ import annotations

import os
import time

import pytest

from edge import registry
from edge.store import connect, migrate
from edge.store.query import ReadingReader
from tests.conftest import wait_until
from tests.firmware import modules
from tests.sitekit import BRIDGE_ID, NODE_ID
from tests.webui.browser import CHROMIUM, expect, launch, log_in, offline_page
from tests.webui.helpers import make_user
from tests.webui.sitepanel import newest_reading, panel_site

pytestmark = [
    pytest.mark.firmware,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]


def test_add_rename_bridge_state_and_remove_in_the_browser(tmp_path, virtual_module):
    db_path = str(tmp_path / "fieldpost.db")
    conn = connect(db_path)
    migrate(conn)
    reader = ReadingReader(conn)
    registry.add_device(
        conn,
        BRIDGE_ID,
        key=modules.BRIDGE_KEY,
        role="bridge",
        name="roof bridge",
        actor="test",
        now=time.time(),
    )
    make_user(db_path, "alice", "admin")
    with panel_site(tmp_path, virtual_module, db_path) as (site, base):
        site.start_node()
        wait_until(
            lambda: conn.execute("SELECT 1 FROM quarantine WHERE device_id = ?", (NODE_ID,)).fetchone(),
            timeout=30,
            what="the unknown node in quarantine",
        )
        with launch() as browser, offline_page(browser) as page:
            log_in(page, base, "alice")
            page.goto(base + "/devices")
            page.get_by_label("Module id (16 hex digits; empty: make one)").fill(NODE_ID)
            page.get_by_label("Key (32 hex digits; empty: make one)").fill(modules.NODE_KEY.hex())
            page.get_by_label("Name").fill("cellar node")
            page.get_by_label("Sampling interval (seconds, 10 to 86400)").fill("10")
            page.get_by_role("button", name="Add module").click()
            expect(page.locator("#new-key-value")).to_have_text(modules.NODE_KEY.hex())

            page.goto(base + "/")
            row = page.locator(f"#device-{NODE_ID}")
            expect(row).to_contain_text("cellar node")
            wait_until(lambda: newest_reading(reader), timeout=30, what="the node's first reading once added")
            expect(row).to_contain_text("online", timeout=15_000)
            expect(row).to_contain_text("°C", timeout=15_000)
            expect(page.locator(f"#device-{BRIDGE_ID}")).to_contain_text("online")  # not "offline / never"

            page.goto(f"{base}/devices/{NODE_ID}/manage")
            page.get_by_label("Name").fill("cellar north")
            page.get_by_label("Also send the new interval to the module (a downlink)").uncheck()
            page.get_by_role("button", name="Save").click()
            expect(page.locator(".flash")).to_contain_text("saved")
            page.goto(base + "/")
            expect(page.locator(f"#device-{NODE_ID}")).to_contain_text("cellar north")

            page.goto(base + "/devices")
            bridge = page.locator(f"#bridge-{BRIDGE_ID}")
            expect(bridge).to_contain_text("online")  # its serial link is up in the daemon
            expect(bridge).to_contain_text("cellar north")
            expect(bridge).to_contain_text("frames rx")

            page.goto(f"{base}/devices/{NODE_ID}/manage")
            page.get_by_label("Type the device id to confirm").fill("not it")
            page.get_by_role("button", name="Remove module").click()
            expect(page.locator("#confirm-error")).to_contain_text("nothing was deleted")
            page.get_by_label("Type the device id to confirm").fill(NODE_ID)
            page.get_by_role("button", name="Remove module").click()
            expect(page.locator(".flash")).to_contain_text("removed")
            page.goto(base + "/")
            expect(page.locator(f"#device-{NODE_ID}")).to_have_count(0)
        assert conn.execute("SELECT count(*) FROM devices WHERE id = ?", (NODE_ID,)).fetchone()[0] == 0
        actions = [
            r[0]
            for r in conn.execute("SELECT action FROM audit_log WHERE target = ? ORDER BY id", (NODE_ID,))
        ]
        assert actions == ["device.add", "device.update", "device.remove"]
    reader.close()
    conn.close()
