"""Export a device's readings for a time range as CSV or JSON, streamed in chunks."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC

from flask import (
    Blueprint,
    Response,
    current_app,
    render_template,
    request,
    stream_with_context,
)

from edge.errors import ValidationError
from edge.export import value_rows
from webui import queries
from webui.db import get_db, now, open_db, reader_for
from webui.timeparse import iso, parse_time

bp = Blueprint("export", __name__)

CSV_COLUMNS = [
    "measured_at",  # when it was measured (received_at less its age on the module)
    "time_utc",
    "device_id",
    "fcnt",
    "port",
    "channel",
    "name",
    "value",
    "unit",
    "rssi",
    "snr",
    "raw",
    "decode_error",
    "received_at",  # when the edge received it
]


def parse_export_args(args) -> tuple[dict, dict[str, str]]:
    """Validate device, start, end, format; return (values, errors by field)."""
    errors: dict[str, str] = {}
    values: dict = {
        "device": (args.get("device") or "").strip(),
        "format": args.get("format", "csv"),
    }
    if queries.get_device(get_db(), values["device"]) is None:
        errors["device"] = "Choose a registered device."
    if values["format"] not in ("csv", "json"):
        errors["format"] = "Choose CSV or JSON."
    for field in ("start", "end"):
        try:
            values[field] = parse_time(field, args.get(field))
        except ValidationError as exc:
            errors[exc.field] = exc.message
    if "start" not in errors and "end" not in errors:
        if values["end"] <= values["start"]:
            errors["end"] = "The end must be after the start."
        elif values["end"] - values["start"] > current_app.config["EXPORT_MAX_DAYS"] * 86400:
            errors["end"] = f"Export at most {current_app.config['EXPORT_MAX_DAYS']} days at a time."
    return values, errors


@bp.route("/export")
def index():
    t = now()
    devices = get_db().execute("SELECT id, name FROM devices ORDER BY name, id").fetchall()
    if request.args:
        values, errors = parse_export_args(request.args)
        values["start_text"], values["end_text"] = (
            request.args.get("start", ""),
            request.args.get("end", ""),
        )
    else:
        values, errors = (
            {
                "device": "",
                "format": "csv",
                "start_text": iso(t - 86400),
                "end_text": iso(t + 60),
            },
            {},
        )
    return render_template(
        "export.html", devices=devices, values=values, errors=errors
    ), 400 if errors else 200


@bp.route("/export/data")
def data():
    values, errors = parse_export_args(request.args)
    if errors:
        devices = get_db().execute("SELECT id, name FROM devices ORDER BY name, id").fetchall()
        values["start_text"], values["end_text"] = (
            request.args.get("start", ""),
            request.args.get("end", ""),
        )
        return render_template("export.html", devices=devices, values=values, errors=errors), 400
    device, start, end, fmt = (
        values["device"],
        values["start"],
        values["end"],
        values["format"],
    )
    name = f"fieldpost-{device}-{iso(start).replace(':', '')}-{iso(end).replace(':', '')}.{fmt}"
    body = stream_csv(device, start, end) if fmt == "csv" else stream_json(device, start, end)
    mimetype = "text/csv" if fmt == "csv" else "application/json"
    return Response(
        stream_with_context(body),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _rows(device: str, start: float, end: float) -> Iterator[dict]:
    """The device's readings as dicts (values decoded), on a connection of the stream's own:
    the stream outlives the view function's return."""
    conn = open_db()
    try:
        reader = reader_for(conn)
        for reading in queries.iter_readings(reader, device, start=start, end=end):
            yield queries.reading_dict(reader, reading)
    finally:
        conn.close()


def stream_csv(device: str, start: float, end: float) -> Iterator[str]:
    """One line per decoded value (a reading with no values still gets one line, for its raw bytes)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for r in _rows(device, start, end):
        common = [
            r["measured_at"],
            iso_seconds(r["measured_at"]),
            r["device_id"],
            r["fcnt"],
            r["port"],
        ]
        tail = [r["rssi"], r["snr"], r["raw"], r["decode_error"] or "", r["received_at"]]
        writer.writerows(value_rows(common, r["values"], tail))
        if buf.tell() > 32768:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def iso_seconds(ts: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stream_json(device: str, start: float, end: float) -> Iterator[str]:
    head = {"device": device, "start": start, "end": end}
    yield (json.dumps(head)[:-1] + ', "readings": [')  # the object stays open for the streamed list
    first = True
    for r in _rows(device, start, end):
        yield ("" if first else ",") + "\n" + json.dumps(r)
        first = False
    yield "\n]}\n"
