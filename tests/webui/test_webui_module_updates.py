"""Starting and cancelling module firmware updates on the Modules page, through the test client on
a real store with real kept bundles: reviewed with the CLI's own estimate, queued through the CLI's
own function, audited under the user's name; admins only, CSRF-protected, every refusal shown
next to the field it is about."""

from __future__ import annotations

import json
import re

import pytest
from markupsafe import escape

from edge.fuota import jobs, updates
from edge.fuota.config import UpdatesSection
from edge.store import connect, transaction
from tests.firmware import updatekit
from tests.webui.helpers import add_device, csrf_token

NODE, NODE2, OTHER = "00aa00aa00aa0001", "00aa00aa00aa0002", "00bb00bb00bb0003"
V1, V2 = updatekit.V1, updatekit.V2


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    return updatekit.build_bundles(tmp_path_factory.mktemp("bundles"))


@pytest.fixture
def site(app, db_path, bundles):
    store = updates.bundle_store(db_path)
    for name in ("v1", "v2"):
        store.keep(bundles[name])
    for dev, interval in ((NODE, 600), (NODE2, 300)):
        add_device(db_path, dev, name=f"node {dev[-1]}", interval_s=interval)
    add_device(db_path, OTHER, name="no board")
    conn = connect(db_path)
    conn.execute("UPDATE devices SET board = 'unix', firmware = ? WHERE id IN (?, ?)", (V1, NODE, NODE2))
    conn.commit()
    yield conn
    conn.close()


def _jobs(conn):
    return [dict(r) for r in conn.execute("SELECT * FROM module_updates ORDER BY id")]


def _audit(conn, action):
    return conn.execute(
        "SELECT actor, target, detail FROM audit_log WHERE action = ? ORDER BY id", (action,)
    ).fetchall()


def _error(page: str, field: str) -> str:
    match = re.search(rf'<p class="error" id="{field}-error">(.*?)</p>', page, re.S)
    return match.group(1) if match else ""


def test_review_shows_the_clis_estimate_then_confirming_queues_it_audited_as_the_user(admin, site, db_path):
    token = csrf_token(admin, "/devices")
    form = {"csrf_token": token, "target": f"device:{NODE}", "version": V2, "dr": "0"}
    review = admin.post("/devices/updates", data=form)
    page = review.get_data(as_text=True)
    assert review.status_code == 200 and _jobs(site) == []  # reviewed, nothing queued yet
    # the very words `modules update` prints for this node (its 600 s interval, DR0, the package)
    # and the shipped [updates] energy_mah_day: the node's charge and pace, as the CLI gives them
    allowance = UpdatesSection.energy_mah_day
    (planned,) = updates.plan(
        site, updates.bundle_store(db_path), device_ids=[NODE], version=V2, dr=0, energy_mah_day=allowance
    )
    expected = updates.estimate_text(
        updates.air_estimate("unix", len(planned.data), 0, 600, energy_mah_day=allowance)
    )
    assert expected != updates.estimate_text(
        updates.air_estimate("unix", len(planned.data), 0, 300, energy_mah_day=allowance)
    )
    assert "mAh of the node's battery" in expected and "requests at once" in expected
    assert f'<span class="update-estimate">{escape(expected)}</span>' in page
    confirm = admin.post("/devices/updates", data={**form, "confirmed": "yes"})
    assert confirm.status_code == 303
    (job,) = _jobs(site)
    assert (job["device_id"], job["version"], job["from_version"], job["state"], job["transport"]) == (
        NODE,
        V2,
        V1,
        "queued",
        "air",
    )
    ((who, target, detail),) = _audit(site, "module.update")
    assert (who, target, json.loads(detail)["job"]) == ("alice", NODE, job["id"])
    listed = admin.get("/devices").get_data(as_text=True)
    card = listed.split(f'id="update-{job["id"]}"')[1].split("</li>")[0]
    assert "queued" in card and "Cancel update" in card


def test_every_module_of_a_board_with_max_in_flight(admin, site):
    token = csrf_token(admin, "/devices")
    form = {"csrf_token": token, "target": "board:unix", "version": V2, "dr": "5", "max_in_flight": "1"}
    page = admin.post("/devices/updates", data=form).get_data(as_text=True)
    assert page.count('class="update-estimate"') == 2 and "at DR5" in page
    assert admin.post("/devices/updates", data={**form, "confirmed": "yes"}).status_code == 303
    assert [(j["device_id"], j["max_in_flight"]) for j in _jobs(site)] == [(NODE, 1), (NODE2, 1)]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"target": ""}, "target", "Pick a module, or every module of a board"),
        ({"target": f"device:{OTHER}"}, "target", "Pick a module, or every module of a board"),  # no board
        ({"version": "7.7.7"}, "version", "Pick a firmware version the edge keeps"),
        ({"version": V1}, "version", f"{NODE}: "),  # not newer than what it runs
        ({"max_in_flight": "0"}, "max_in_flight", "from 1 to 1000"),
        ({"dr": "16"}, "dr", "between 0 and 15"),
        ({"dr": ""}, "dr", "Enter a data rate from 0 to 15"),
    ],
)
def test_bad_input_is_refused_next_to_its_field_and_nothing_is_queued(admin, site, change, field, message):
    token = csrf_token(admin, "/devices")
    form = {"csrf_token": token, "target": f"device:{NODE}", "version": V2, "dr": "0", **change}
    for confirmed in ("", "yes"):
        r = admin.post("/devices/updates", data={**form, "confirmed": confirmed})
        page = r.get_data(as_text=True)
        assert r.status_code == 400, page
        assert message in _error(page, field), _error(page, field) or page
    assert _jobs(site) == [] and _audit(site, "module.update") == []


def test_a_module_with_an_update_under_way_is_refused_on_the_target(admin, site):
    token = csrf_token(admin, "/devices")
    form = {"csrf_token": token, "target": f"device:{NODE}", "version": V2, "dr": "0", "confirmed": "yes"}
    assert admin.post("/devices/updates", data=form).status_code == 303
    again = admin.post("/devices/updates", data={**form, "target": "board:unix"})
    assert again.status_code == 400
    assert "already has an update under way" in _error(again.get_data(as_text=True), "target")
    assert len(_jobs(site)) == 1  # refused as a whole: the board's other node was not queued either


def test_without_csrf_or_as_an_operator_nothing_starts_or_is_cancelled(admin, operator, site):
    form = {"target": f"device:{NODE}", "version": V2, "dr": "0", "confirmed": "yes"}
    assert admin.post("/devices/updates", data=form).status_code == 400
    assert admin.post("/devices/updates", data={**form, "csrf_token": "forged"}).status_code == 400
    token = csrf_token(operator, "/devices")
    assert operator.post("/devices/updates", data={**form, "csrf_token": token}).status_code == 403
    assert "update-form" not in operator.get("/devices").get_data(as_text=True)
    assert _jobs(site) == []
    token = csrf_token(admin, "/devices")
    assert admin.post("/devices/updates", data={**form, "csrf_token": token}).status_code == 303
    (job,) = _jobs(site)
    url = f"/devices/updates/{job['id']}/cancel"
    assert admin.post(url, data={}).status_code == 400
    assert operator.post(url, data={"csrf_token": csrf_token(operator, "/devices")}).status_code == 403
    assert _jobs(site)[0]["state"] == "queued"


def test_cancel_per_job_audited_and_an_ended_one_is_left_alone(admin, site):
    token = csrf_token(admin, "/devices")
    form = {"csrf_token": token, "target": "board:unix", "version": V2, "dr": "0", "confirmed": "yes"}
    admin.post("/devices/updates", data=form)
    first, second = (j["id"] for j in _jobs(site))
    r = admin.post(f"/devices/updates/{first}/cancel", data={"csrf_token": token}, follow_redirects=True)
    assert f"Update #{first} of {NODE} cancelled." in r.get_data(as_text=True)
    assert [j["state"] for j in _jobs(site)] == ["cancelled", "queued"]  # only that job
    ((who, target, detail),) = _audit(site, "module.update.cancel")
    assert (who, target, json.loads(detail)["job"]) == ("alice", NODE, first)
    with transaction(site):
        jobs.progress(site, second, 0, now=1)
        jobs.staged(site, second, now=2)
    r = admin.post(f"/devices/updates/{second}/cancel", data={"csrf_token": token}, follow_redirects=True)
    assert "is staged: only a queued or sending one can be cancelled" in r.get_data(as_text=True)
    assert _jobs(site)[1]["state"] == "staged" and len(_audit(site, "module.update.cancel")) == 1
    assert admin.post("/devices/updates/999/cancel", data={"csrf_token": token}).status_code == 404


def test_a_stalled_update_shows_why_and_no_cancel(admin, site):
    token = csrf_token(admin, "/devices")
    form = {"csrf_token": token, "target": f"device:{NODE}", "version": V2, "dr": "0", "confirmed": "yes"}
    admin.post("/devices/updates", data=form)
    (job,) = _jobs(site)
    with transaction(site):
        jobs.progress(site, job["id"], 0, now=1000)
        jobs.expire_stalled(site, timeout_h=24, now=1000 + 24 * 3600)
    card = admin.get("/devices").get_data(as_text=True).split(f'id="update-{job["id"]}"')[1].split("</li>")[0]
    assert "failed" in card and "no progress for 24 h" in card and "Cancel update" not in card


def test_the_panel_keeps_the_sites_energy_allowance(tmp_path):
    """An update started on the panel keeps the [updates] energy_mah_day the daemon runs with, as one
    started by the CLI does (webui.config.from_edge_config hands it to the panel)."""
    from edge import config as edge_config
    from webui.config import from_edge_config

    path = tmp_path / "fieldpost.toml"
    path.write_text(f'[edge]\ndb = "{tmp_path / "fp.db"}"\n[updates]\nenergy_mah_day = 3.5\n')
    assert from_edge_config(edge_config.load(path, env={})).flask["UPDATES_ENERGY_MAH_DAY"] == 3.5
