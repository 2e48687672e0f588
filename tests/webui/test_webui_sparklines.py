"""Overview sparklines folded in incrementally, and the sync page's backlog history."""

from __future__ import annotations

import time

from edge.codecs import CodecRunner
from edge.store import connect, transaction
from edge.store.numbers import Numbers
from tests.webui.helpers import Module, add_device
from webui import backlog_history, sparklines

DEV = "0011223344556677"


def _hourly_counts(db_path):
    conn = connect(db_path)
    return {(r["channel"], r["hour"]): r["n"] for r in conn.execute("SELECT * FROM panel_hourly")}


def test_overview_sparkline_folds_each_reading_once(app, admin, db_path):
    add_device(db_path, DEV, interval_s=600)
    module = Module(db_path, DEV)
    t = time.time()
    with module.batch():
        for i in range(48):  # two days, every 30 minutes: only the last 24 h count
            module.reading(temperature=10.0 + (i % 4), now=t - 48 * 1800 + i * 1800)
    page = admin.get("/").get_data(as_text=True)
    assert '<svg class="spark"' in page and "<polyline points=" in page
    counts = _hourly_counts(db_path)
    assert sum(n for (ch, _h), n in counts.items() if ch == 1) in (
        47,
        48,
    )  # the last 24 h (edges by the hour)
    admin.get("/")
    admin.get("/fragments/overview")
    assert _hourly_counts(db_path) == counts  # nothing counted twice
    module.reading(temperature=30.0, now=t + 1)
    admin.get("/")
    after = _hourly_counts(db_path)
    assert sum(after.values()) == sum(counts.values()) + 3  # one new reading: its 3 values
    conn = connect(db_path)
    hour = int((t + 1) // 3600)
    assert (
        conn.execute("SELECT hi FROM panel_hourly WHERE channel = 1 AND hour = ?", (hour,)).fetchone()[0]
        == 30.0
    )


def test_sparkline_lines_break_at_missing_hours():
    line = {"channel": 1, "hours": [100, 101, 105, 106], "avg": [1.0, 2.0, 3.0, 4.0], "lo": 1.0, "hi": 4.0}
    line["first_hour"] = 83
    runs = sparklines.svg_points(line)
    assert len(runs) == 2 and all(len(run.split()) == 2 for run in runs)


def test_fold_of_a_device_without_readings_is_harmless(app, db_path):
    add_device(db_path, DEV, interval_s=600)
    conn = connect(db_path)
    device = conn.execute("SELECT * FROM devices WHERE id = ?", (DEV,)).fetchone()
    with transaction(conn):
        sparklines.fold(conn, CodecRunner(), Numbers(), device, now=time.time())
    assert sparklines.hourly(conn, DEV, now=time.time()) is None


def test_backlog_samples_every_5_minutes_and_the_sync_chart(app, admin, db_path):
    add_device(db_path, DEV, interval_s=600)
    module = Module(db_path, DEV)
    conn = connect(db_path)
    t = time.time() - 3600
    assert backlog_history.sample(conn, now=t) is True
    for _ in range(3):
        module.reading()
    assert backlog_history.sample(conn, now=t + 60) is False  # too soon
    assert backlog_history.sample(conn, now=t + 300) is True
    h = backlog_history.history(conn, since=t - 1)
    assert h["readings"] == [0, 3] and h["times"] == [int(t), int(t + 300)]
    page = admin.get("/sync").get_data(as_text=True)
    assert 'id="backlog-chart"' in page and "/static/sync_chart.js" in page
