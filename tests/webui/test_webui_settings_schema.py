"""The panel's retention settings take the ranges of the [retention] schema (edge.config)."""

from __future__ import annotations

from edge.config.schema import bounds
from edge.store.retention import RetentionSection
from tests.webui.helpers import CSRF_RE


def _post(client, days: str, mib: str = ""):
    token = CSRF_RE.search(client.get("/settings").get_data(as_text=True)).group(1)
    return client.post(
        "/settings/retention", data={"csrf_token": token, "max_age_days": days, "max_db_mb": mib}
    )


def test_retention_form_takes_the_schema_range(admin):
    top = int(bounds(RetentionSection, "max_age_days")[1])
    assert top == 36500  # the config file's own limit, not one of the panel's
    refused = _post(admin, str(top + 1))
    assert refused.status_code == 400 and 'id="max_age_days-error"' in refused.get_data(as_text=True)
    assert _post(admin, str(top)).status_code == 302
    too_big = int(bounds(RetentionSection, "max_db_bytes")[1]) // (1024 * 1024) + 1
    assert _post(admin, "30", str(too_big)).status_code == 400
