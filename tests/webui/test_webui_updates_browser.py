"""Starting and cancelling a module's firmware update in Chromium, against the real daemon serving
the panel (a virtual bridge on its link): an admin picks a node and a kept version, reviews the
estimate `modules update` prints, confirms, sees the update listed as queued, and cancels it. The
node is not started, so nothing but the panel moves the job."""

from __future__ import annotations

import json
import os
import time

import pytest

from edge import registry
from edge.fuota import updates
from edge.fuota.config import UpdatesSection
from edge.store import connect, migrate
from tests.firmware import modules, updatekit
from tests.sitekit import BRIDGE_ID, NODE_ID
from tests.webui.browser import CHROMIUM, expect, launch, log_in, offline_page, unlabelled_controls
from tests.webui.helpers import make_user
from tests.webui.sitepanel import panel_site

pytestmark = [
    pytest.mark.firmware,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]


def test_an_admin_starts_and_cancels_an_update_in_the_browser(tmp_path, virtual_module):
    db_path = str(tmp_path / "fieldpost.db")
    conn = connect(db_path)
    migrate(conn)
    t = time.time()
    registry.add_device(conn, BRIDGE_ID, key=modules.BRIDGE_KEY, role="bridge", actor="test", now=t)
    registry.add_device(
        conn,
        NODE_ID,
        key=modules.NODE_KEY,
        name="cellar node",
        board="unix",
        interval_s=600,
        actor="test",
        now=t,
    )
    conn.execute("UPDATE devices SET firmware = ? WHERE id = ?", (updatekit.V1, NODE_ID))
    conn.commit()
    bundles = updatekit.build_bundles(tmp_path / "bundles")
    store = updates.bundle_store(db_path)
    for name in ("v1", "v2"):
        store.keep(bundles[name])
    (planned,) = updates.plan(
        conn,
        store,
        device_ids=[NODE_ID],
        version=updatekit.V2,
        dr=5,
        energy_mah_day=UpdatesSection.energy_mah_day,
    )
    estimate = updates.estimate_text(planned.estimate)
    make_user(db_path, "alice", "admin")
    with panel_site(tmp_path, virtual_module, db_path) as (_site, base):
        with launch() as browser, offline_page(browser) as page:
            log_in(page, base, "alice")
            page.goto(base + "/devices")
            form = page.locator("#update-form")
            form.get_by_label("Update", exact=True).select_option(f"device:{NODE_ID}")
            form.get_by_label("To the kept firmware version").select_option(updatekit.V2)
            form.get_by_label("Nodes: data rate the estimate assumes (0: the slowest)").fill("5")
            assert unlabelled_controls(page) == []
            form.get_by_role("button", name="Review update").click()
            review = page.locator("#update-review")
            expect(review).to_contain_text(f"{NODE_ID} {updatekit.V1} → {updatekit.V2}")
            expect(review.locator(".update-estimate")).to_have_text(estimate)
            assert conn.execute("SELECT count(*) FROM module_updates").fetchone()[0] == 0
            review.get_by_role("button", name="Confirm and queue").click()
            expect(page.locator(".flash")).to_contain_text(f"Queued 1 firmware update(s) to {updatekit.V2}")
            (job_id,) = conn.execute("SELECT id FROM module_updates").fetchone()
            card = page.locator(f"#update-{job_id}")
            expect(card).to_contain_text("queued")
            expect(page.locator("#updates-in-flight")).to_have_text("1 under way")
            card.get_by_role("button", name=f"Cancel update {job_id} of {NODE_ID}").click()
            expect(page.locator(".flash")).to_contain_text(f"Update #{job_id} of {NODE_ID} cancelled.")
            expect(page.locator(f"#update-{job_id}")).to_contain_text("cancelled")
            expect(page.locator(f"#update-{job_id}").get_by_role("button")).to_have_count(0)
    assert (
        conn.execute("SELECT state FROM module_updates WHERE id = ?", (job_id,)).fetchone()[0] == "cancelled"
    )
    actions = [
        (r[0], r[1], json.loads(r[2]).get("job"))
        for r in conn.execute(
            "SELECT action, actor, detail FROM audit_log WHERE target = ? ORDER BY id", (NODE_ID,)
        )
        if r[0].startswith("module.")
    ]
    assert actions == [("module.update", "alice", job_id), ("module.update.cancel", "alice", job_id)]
    conn.close()
