"""Chart data for a device page: values per time bucket, downsampled by SQLite.

The range is cut into about as many buckets as the chart has pixels. One SQL query groups the
device's readings in the range by bucket (``GROUP BY``), and an aggregate function decodes each
raw payload (values are not stored decoded, docs/store.md) and keeps count, sum, min and max per
value: nothing is handed to the browser that it could not draw, and a bucket's min and max survive
the averaging. A bucket with one reading keeps that reading's own time, so sparse data is drawn
where it happened. Buckets further apart than a few of the device's intervals get an empty point
between them, so a gap is drawn as a gap.

Values from the sensor codec (port 1) are *measures*; module status counters (port 3) are
*diagnostics*. Measures sharing a unit share a chart.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.codecs import CodecRunner
from edge.radio import PORT_READINGS, PORT_STATUS
from edge.store import readings
from edge.store.decode import decode_payload
from edge.store.numbers import Numbers

RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
MIN_POINTS, MAX_POINTS, DEFAULT_POINTS = 20, 2000, 600
MAX_SPAN_S = 400 * 86400
GAP_INTERVALS = 3.0  # no reading for this many intervals: a gap


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    points: int

    @property
    def bucket_ms(self) -> int:
        return max(1, math.ceil((self.end - self.start) * 1000 / self.points))


def _stats_aggregate(codecs: CodecRunner, codec: str):
    """An SQLite aggregate class decoding (port, raw) rows into per-value count/sum/min/max."""

    class BucketStats:
        def __init__(self) -> None:
            self.acc: dict[str, list] = {}

        def step(self, port: int, raw: bytes) -> None:
            values, _error = decode_payload(codecs, codec, port, bytes(raw))
            kind = "measure" if port == PORT_READINGS else "diagnostic"
            for v in values or ():
                value = v.get("value")
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    continue
                key = f"{kind}\x1f{v.get('channel') or 0}\x1f{v.get('name') or ''}\x1f{v.get('unit') or ''}"
                a = self.acc.get(key)
                if a is None:
                    self.acc[key] = [1, value, value, value]
                else:
                    a[0] += 1
                    a[1] += value
                    a[2] = min(a[2], value)
                    a[3] = max(a[3], value)

        def finalize(self) -> str:
            return json.dumps(self.acc)

    return BucketStats


def series(
    conn: sqlite3.Connection,
    codecs: CodecRunner,
    numbers: Numbers,
    device: sqlite3.Row,
    window: Window,
) -> dict[str, Any]:
    """The device's values in ``window``: ``times`` (s), and per value ``avg``/``min``/``max``
        aligned with them (None where a value has nothing: a real gap only at the indexes in ``gaps``,
    elsewhere the line joins over it), grouped into ``charts``."""
    out: dict[str, Any] = {
        "start": window.start,
        "end": window.end,
        "bucket_s": window.bucket_ms / 1000,
        "downsampled": False,
        "times": [],
        "gaps": [],  # indexes of the empty points that break the lines
        "series": [],
        "charts": [],
    }
    number = numbers.number(conn, device["id"])
    if number is None:
        return out
    start_ms, end_ms = round(window.start * 1000), round(window.end * 1000)
    low, high = readings.device_bounds(number)
    first = readings.first_at_or_after(conn, number, start_ms)
    if first is None:
        return out
    conn.create_aggregate("fp_bucket_stats", 2, _stats_aggregate(codecs, device["codec"]))
    # by measured time (a reading that waited on its module is drawn when it was measured); the
    # search by receive time finds a first row at or before the window, as measured <= received
    measured = readings.MEASURED_MS
    rows = conn.execute(
        f"SELECT ({measured} - :start) / :bucket AS b, count(*), avg({measured}), fp_bucket_stats(port, raw)"
        f" FROM readings WHERE id BETWEEN :first AND :high AND {measured} >= :start AND {measured} < :end"
        " AND port IN (:p1, :p3) GROUP BY b ORDER BY b",
        {
            "start": start_ms,
            "end": end_ms,
            "bucket": window.bucket_ms,
            "first": first,
            "high": high,
            "p1": PORT_READINGS,
            "p3": PORT_STATUS,
        },
    ).fetchall()
    gap_s = max(GAP_INTERVALS * float(device["interval_s"] or 0), 2.5 * window.bucket_ms / 1000)
    times: list[float] = []
    buckets: list[dict[str, list] | None] = []
    for _b, count, avg_ms, stats in rows:
        decoded = json.loads(stats)
        if not decoded:
            continue  # nothing numeric in this bucket (an undecodable payload): no point
        t = avg_ms / 1000
        if times and t - times[-1] > gap_s:
            out["gaps"].append(len(times))
            times.append((times[-1] + t) / 2)  # an empty point: the line breaks here
            buckets.append(None)
        times.append(round(t, 3))
        buckets.append(decoded)
        if count > 1:
            out["downsampled"] = True
    keys = sorted(
        {k for b in buckets if b for k in b},
        key=lambda k: (k.split("\x1f")[0] != "measure", int(k.split("\x1f")[1]), k.split("\x1f")[2]),
    )
    for key in keys:
        kind, channel, name, unit = key.split("\x1f")
        avg: list[float | None] = []
        lo: list[float | None] = []
        hi: list[float | None] = []
        for b in buckets:
            a = b.get(key) if b else None
            avg.append(None if a is None else a[1] / a[0])
            lo.append(None if a is None else a[2])
            hi.append(None if a is None else a[3])
        out["series"].append(
            {
                "kind": kind,
                "channel": int(channel),
                "name": name,
                "unit": unit,
                "avg": avg,
                "min": lo,
                "max": hi,
            }
        )
    out["times"] = times
    out["charts"] = group_charts(out["series"])
    return out


def group_charts(series_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Measures sharing a unit in one chart (a value without a unit alone); diagnostics one each."""
    charts: list[dict[str, Any]] = []
    by_unit: dict[str, dict[str, Any]] = {}
    for i, s in enumerate(series_list):
        if s["kind"] == "measure" and s["unit"]:
            chart = by_unit.get(s["unit"])
            if chart is None:
                chart = by_unit[s["unit"]] = {"kind": "measure", "unit": s["unit"], "series": []}
                charts.append(chart)
            chart["series"].append(i)
        else:
            charts.append({"kind": s["kind"], "unit": s["unit"], "series": [i]})
    for chart in charts:
        names = sorted({series_list[i]["name"] for i in chart["series"]})
        chart["title"] = ", ".join(names) + (f" ({chart['unit']})" if chart["unit"] else "")
    return charts
