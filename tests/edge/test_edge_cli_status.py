"""`fieldpost status`: the sync part comes from edge.sync.state.sync_status (backlog count by
priority and age, last success, last error, bytes today), in text and in --json."""

import json
import re
import time

from click.testing import CliRunner

from edge import cli, outbox
from edge.store import connect, migrate, transaction
from edge.sync import state
from tests.storekit import mark_synced, put_readings

DEV = "00000000000000d1"


def make_site(tmp_path, *, sinks):
    db = tmp_path / "fp.db"
    config = tmp_path / "fieldpost.toml"
    config.write_text(f'[edge]\ndb = "{db}"\n[http]\nport = 0\n')
    conn = connect(db)
    migrate(conn)
    now = time.time()
    # two readings waiting for two minutes and one, one alarm for one, one reading already synced
    put_readings(conn, DEV, [1, 2, 3], received_at=[now - 300, now - 120, now - 60])
    mark_synced(conn, DEV, 1)
    with transaction(conn):
        outbox.enqueue(conn, msg_id="a1", kind="alarm", body={"id": "a1"}, priority=0, now=now - 60)
        for sink in sinks:
            state.record_success(conn, sink, now - 200)
            state.add_bytes(conn, sink, 1500, now - 200)
        if sinks:
            state.record_error(conn, sinks[0], "connection refused", now - 30)
    conn.close()

    def run(*args):
        result = CliRunner().invoke(cli.main, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return run


def test_status_json_carries_the_sync_summary(tmp_path):
    run = make_site(tmp_path, sinks=["mqtt"])
    info = json.loads(run("status", "--json"))
    assert info["backlog"] == 3
    assert 110 <= info["backlog_age_s"] < 3600 and info["backlog_oldest_at"] is not None
    sync = info["sync"]
    assert sync["backlog_by_priority"] == {"alarms": 1, "readings": 2, "bulk": 0}
    assert (sync["last_error"], sync["healthy"], sync["bytes_today"]) == ("connection refused", False, 1500)
    assert sync["last_success"] < sync["last_error_at"]
    assert sync["sinks"]["mqtt"]["bytes_today"] == 1500


def test_status_text_shows_backlog_age_and_a_failing_sink(tmp_path):
    out = make_site(tmp_path, sinks=["mqtt", "https"])("status")
    assert re.search(
        r"^backlog +3 unsynced \(alarms 1, readings 2, bulk 0\), oldest .+ UTC \(2\.\d min ago\)$", out, re.M
    )
    assert re.search(r"^sync +failing .*, 3000 bytes today$", out, re.M)
    assert re.search(r"^  last error +connection refused \(at .+ UTC\)$", out, re.M)
    assert re.search(r"^  https: last success .+ UTC, last error -, 1500 bytes today$", out, re.M)
    assert re.search(
        r"^  mqtt: last success .+ UTC, last error connection refused \(at .+\), 1500 bytes", out, re.M
    )


def test_status_text_before_any_sync(tmp_path):
    out = make_site(tmp_path, sinks=[])("status")
    assert re.search(r"^sync +never attempted .*, 0 bytes today$", out, re.M)
    assert re.search(r"^  last success -$", out, re.M) and re.search(r"^  last error +-$", out, re.M)
