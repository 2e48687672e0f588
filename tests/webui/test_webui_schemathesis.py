"""schemathesis against /api/openapi.json, in-process (WSGI): no 5xx, every response matches the schema.

Bounded (a few dozen examples per operation) so it runs in seconds. The token is an operator's, so
the write operations run for real against a seeded database.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.webui.helpers import Module, add_device, raise_alarm

DEV = "0011223344556677"
MAX_EXAMPLES = 15


@pytest.fixture
def api_schema(app, db_path, tokens):
    add_device(db_path, DEV, name="<b>pump</b>")
    module = Module(db_path, DEV)
    t = time.time()
    for i in range(3):
        module.reading(temperature=3.0 + i, now=t - 60 * (3 - i))
    raise_alarm(db_path, device_id=DEV)
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    return schema, {"Authorization": f"Bearer {tokens['operator']}"}


def test_every_operation_conforms(api_schema):
    schema, headers = api_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            case.call_and_validate(headers=headers)

        check()


def test_operations_on_a_real_device_conform(api_schema):
    """Random device ids are almost never registered; these cases hit the seeded one."""
    schema, headers = api_schema
    for result in schema.get_all_operations():
        operation = result.ok()
        if "{device_id}" not in operation.path:
            continue
        body = (
            {"command": "set_interval", "args": {"seconds": 600}}
            if operation.method.upper() == "POST"
            else None
        )
        kwargs = {"body": body} if body is not None else {}
        response = operation.Case(path_parameters={"device_id": DEV}, **kwargs).call_and_validate(
            headers=headers
        )
        assert response.status_code in (200, 201), (
            operation.label,
            response.status_code,
        )
