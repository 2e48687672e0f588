"""Chart data from real readings (the edge's ingest path): buckets made by SQLite keep each bucket's
min and max, gaps stay gaps, measures sharing a unit share a chart, counters go to diagnostics,
custom ranges are read in the site's time zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from edge.codecs import lpp
from edge.store import connect
from tests.webui.helpers import Module, add_device, csrf_token
from webui import settings_store

DEV = "0011223344556677"
T0 = 1_790_000_000.0  # a fixed past instant: ranges are asked for with start and end


def _series(admin, start, end, points=100):
    r = admin.get(f"/devices/{DEV}/series?start={start}&end={end}&points={points}")
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def _by_name(data, name):
    return next(s for s in data["series"] if s["name"] == name)


def test_dense_data_is_bucketed_in_sql_keeping_min_and_max(app, admin, db_path):
    add_device(db_path, DEV, interval_s=60)
    module = Module(db_path, DEV)
    # 2,000 readings a minute apart; one spike up and one down inside otherwise smooth data
    with module.batch():
        for i in range(2000):
            value = 20.0 + (i % 10) * 0.1
            if i == 777:
                value = 95.5
            if i == 1333:
                value = -40.3
            module.reading(temperature=value, now=T0 + i * 60)
    data = _series(admin, T0, T0 + 2000 * 60, points=100)
    assert data["downsampled"] is True
    assert len(data["times"]) <= 101
    temp = _by_name(data, "temperature")
    assert max(v for v in temp["max"] if v is not None) == 95.5  # the spikes survive averaging
    assert min(v for v in temp["min"] if v is not None) == -40.3
    assert max(v for v in temp["avg"] if v is not None) < 30  # ... which alone would hide them
    assert all(T0 <= t < T0 + 2000 * 60 for t in data["times"])
    assert data["times"] == sorted(data["times"])


def test_gaps_stay_gaps_and_one_chart_per_unit(app, admin, db_path):
    add_device(db_path, DEV, interval_s=60)
    module = Module(db_path, DEV)
    extra = lpp.encode([(1, "temperature", 5.0), (4, "temperature", 7.5), (2, "humidity", 50.0)])
    with module.batch():
        for i in range(10):
            module._send(1, extra, rssi=-80, snr=7.0, now=T0 + i * 60)
        for i in range(10):  # two hours later
            module._send(1, extra, rssi=-80, snr=7.0, now=T0 + 7200 + i * 60)
        module._send(3, b'{"u": 3600, "a": 1.5, "m": 2}', rssi=-80, snr=7.0, now=T0 + 7800)
    data = _series(admin, T0, T0 + 9000, points=2000)
    temp = _by_name(data, "temperature")
    assert len(data["gaps"]) == 1  # the two hours without readings; not the status-only point
    gap = data["gaps"][0]
    assert (
        temp["avg"][gap] is None and data["times"][gap - 1] < T0 + 600 < T0 + 7200 <= data["times"][gap + 1]
    )
    measures = [c for c in data["charts"] if c["kind"] == "measure"]
    assert [c["unit"] for c in measures] == ["°C", "%"]  # sensor measures first, by channel
    assert len(measures[0]["series"]) == 2  # both temperatures in one chart
    diagnostics = [c for c in data["charts"] if c["kind"] == "diagnostic"]
    assert {data["series"][c["series"][0]]["name"] for c in diagnostics} >= {"uptime", "airtime", "bad_mic"}
    assert data["charts"].index(measures[-1]) < data["charts"].index(diagnostics[0])


def test_empty_range_and_one_point(app, admin, db_path):
    add_device(db_path, DEV, interval_s=60)
    empty = _series(admin, T0, T0 + 3600)
    assert (
        empty["times"] == [] and empty["charts"] == [] and (empty["start"], empty["end"]) == (T0, T0 + 3600)
    )
    Module(db_path, DEV).reading(temperature=3.3, now=T0 + 100)
    one = _series(admin, T0, T0 + 3600)
    assert one["times"] == [T0 + 100] and _by_name(one, "temperature")["avg"] == [3.3]
    assert (one["start"], one["end"]) == (T0, T0 + 3600)  # the axis spans the range asked for


def test_custom_range_is_read_in_the_site_time_zone(app, admin, db_path):
    add_device(db_path, DEV, interval_s=60)
    token = csrf_token(admin, "/settings")
    bad = admin.post("/settings/site", data={"csrf_token": token, "timezone": "Mars/Olympus"})
    assert bad.status_code == 400 and "Unknown time zone" in bad.get_data(as_text=True)
    assert (
        admin.post("/settings/site", data={"csrf_token": token, "timezone": "Asia/Kolkata"}).status_code
        == 302
    )
    assert settings_store.get(connect(db_path), "site.timezone") == "Asia/Kolkata"
    data = _series(admin, "2026-12-01T08:00", "2026-12-01T09:30")
    expected = datetime(2026, 12, 1, 8, 0, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp()
    assert data["start"] == expected and data["end"] == expected + 5400 and data["timezone"] == "Asia/Kolkata"
    assert "From (Asia/Kolkata)" in admin.get(f"/devices/{DEV}").get_data(as_text=True)


def test_a_bad_codec_payload_is_skipped_not_fatal(app, admin, db_path):
    add_device(db_path, DEV, interval_s=60)
    module = Module(db_path, DEV)
    module._send(1, b"\x01\x67", rssi=-80, snr=7.0, now=T0 + 10)  # truncated LPP
    module.reading(temperature=1.5, now=T0 + 20)
    data = _series(admin, T0, T0 + 60)
    assert _by_name(data, "temperature")["avg"] == [1.5]


def test_chart_data_is_gzipped_for_clients_that_ask(app, admin, db_path):
    import gzip
    import json

    add_device(db_path, DEV, interval_s=60)
    module = Module(db_path, DEV)
    with module.batch():
        for i in range(500):
            module.reading(temperature=20 + (i % 7) * 0.1, now=T0 + i * 60)
    url = f"/devices/{DEV}/series?start={T0}&end={T0 + 30000}&points=1000"
    plain = admin.get(url)
    packed = admin.get(url, headers={"Accept-Encoding": "gzip, deflate"})
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
    assert json.loads(gzip.decompress(packed.data)) == plain.get_json()
    assert len(packed.data) < len(plain.data) / 3


def test_readings_that_waited_are_drawn_when_they_were_measured(app, admin, db_path):
    # Issue 13 item 9: a backlog of 12 readings measured every 10 minutes, held 2 h on the node,
    # all received at T0 + 7200 (port 8: age, then the LPP; docs/radio.md 0.9). The chart puts
    # them over the two hours they cover, not in one point at the moment they arrived.
    from edge.radio import PORT_AGED

    add_device(db_path, DEV, interval_s=600)
    module = Module(db_path, DEV)
    with module.batch():
        for i in range(12):
            age = 7200 - 600 * i  # LEB128, two bytes: 7200 - 600 i >= 600 > 127
            leb = bytes([(age & 0x7F) | 0x80, age >> 7])
            module._send(
                PORT_AGED, leb + lpp.encode([(1, "temperature", 20.0 + i)]), rssi=-80, snr=7.0, now=T0 + 7200
            )
    data = _series(admin, T0 - 60, T0 + 7260, points=200)
    temp = _by_name(data, "temperature")
    measured = {round(t): v for t, v in zip(data["times"], temp["avg"], strict=True) if v is not None}
    assert measured == {round(T0 + 600 * i): 20.0 + i for i in range(12)}
