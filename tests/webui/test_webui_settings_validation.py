"""Settings fields judged on the server, each refusal next to its field with what was wrong."""

from __future__ import annotations

import pytest

from edge.store import connect
from tests.webui.helpers import csrf_token


def _error(page: str, field: str) -> str:
    return page.split(f'id="{field}-error">')[1].split("</p>")[0]


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        ('mqtts://broker".example:8883', "quotes, spaces and angle brackets"),
        ("https://cloud.example/<script>", "quotes, spaces and angle brackets"),
        ("mqtts://-bad-.example:8883", "host name"),
        ("mqtts://broker.example:70000", "port must be 1 to 65535"),
        ("mqtts://broker.example:0", "port must be 1 to 65535"),
        ("ftp://files.example", "mqtt://, mqtts:// or https://"),
        ("https://cloud example/x", "quotes, spaces"),
    ],
)
def test_cloud_endpoint_refusals_name_the_problem(app, admin, db_path, endpoint, message):
    token = csrf_token(admin, "/settings")
    r = admin.post("/settings/cloud", data={"csrf_token": token, "endpoint": endpoint})
    assert r.status_code == 400
    assert message in _error(r.get_data(as_text=True), "endpoint")
    assert connect(db_path).execute("SELECT count(*) FROM settings").fetchone()[0] == 0


@pytest.mark.parametrize(
    "endpoint",
    ["mqtts://broker.example:8883", "https://cloud.example/ingest/v1", "mqtts://[2001:db8::1]:8883"],
)
def test_good_endpoints_are_kept(app, admin, db_path, endpoint):
    token = csrf_token(admin, "/settings")
    assert admin.post("/settings/cloud", data={"csrf_token": token, "endpoint": endpoint}).status_code == 302


def test_retention_and_time_zone_ranges(app, admin):
    token = csrf_token(admin, "/settings")
    r = admin.post("/settings/retention", data={"csrf_token": token, "max_age_days": "0", "max_db_mb": "5"})
    assert r.status_code == 400 and "between 1 and 3650" in _error(r.get_data(as_text=True), "max_age_days")
    r = admin.post("/settings/site", data={"csrf_token": token, "timezone": "../../etc/passwd"})
    assert r.status_code == 400 and "time zone" in _error(r.get_data(as_text=True), "timezone")
