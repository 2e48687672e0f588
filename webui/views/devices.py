"""A device: latest values, charts, raw frames, airtime, downlinks; quarantine and adopt; delete data."""

from __future__ import annotations

import gzip
import math

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from edge.errors import ValidationError
from edge.store import cursor, numbers
from edge.store import readings as store_readings
from webui import airtime, audit, chart_data, queries, site_time
from webui.db import get_db, get_reader, now, write
from webui.edge_adapters import downlinks, registry
from webui.forms import AdoptForm, DeleteDataForm, DownlinkForm, show_error
from webui.views.auth import actor, role_required
from webui.views.overview import page_cursor

bp = Blueprint("devices", __name__)
DELETE_CHUNK = 2000  # readings deleted per transaction: ingest waits milliseconds, not seconds


def _device_or_404(device_id: str):
    device = queries.get_device(get_db(), device_id)
    if device is None:
        abort(404)
    return device


def device_context(device_id: str) -> dict:
    conn = get_db()
    device = _device_or_404(device_id)
    t = now()
    cfg = current_app.config
    reader = get_reader()
    latest = queries.latest_values(reader, device_id)
    lengths = queries.payload_lengths_since(reader, device_id, t - 3600)
    use = airtime.duty_cycle_use(lengths, window_s=3600, sf=cfg["RADIO_SF"], bw_hz=cfg["RADIO_BW_HZ"])
    d = queries.device_dict(device)
    d["battery_v"] = queries.battery_v(reader, device_id, latest)
    return {
        "now": t,
        "device": d,
        "online": queries.is_online(device, t, cfg["ONLINE_INTERVALS"]),
        "latest": latest,
        "frames": [queries.reading_dict(reader, r) for r in queries.raw_frames(reader, device_id)],
        "airtime": use,
        "duty_limit": cfg["DUTY_CYCLE_LIMIT"],
        "radio": {"sf": cfg["RADIO_SF"], "bw_khz": cfg["RADIO_BW_HZ"] / 1000},
        "downlinks": queries.downlinks_for(conn, device_id),
        "alarms": queries.alarms(conn, device_id=device_id, state="open", limit=20),
    }


@bp.route("/devices/<device_id>")
def show(device_id: str):
    context = device_context(device_id)
    return render_template(
        "device.html",
        form=DownlinkForm(),
        delete_form=DeleteDataForm(device_id),
        cursor=page_cursor(get_db()),
        timezone=site_time.zone_name(get_db()),
        **context,
    )


FRAGMENTS = {
    "latest": "_device_latest.html",
    "downlinks": "_device_downlinks.html",
    "radio": "_device_radio.html",
}


@bp.route("/devices/<device_id>/fragment")
def fragment(device_id: str):
    template = FRAGMENTS.get(request.args.get("part", "latest"))
    if template is None:
        abort(404)
    return render_template(template, **device_context(device_id))


@bp.route("/devices/<device_id>/series")
def series(device_id: str):
    """Chart data: ``range`` (1h, 24h, 7d, 30d) back from now, or ``start``/``end`` (site-local
    date and time, or Unix seconds); ``points``: about the chart's width in pixels."""
    device = _device_or_404(device_id)
    conn = get_db()
    zone = site_time.zone_name(conn)
    try:
        window = _chart_window(request.args, zone)
    except ValidationError as exc:
        return jsonify({"error": exc.field, "message": exc.message}), 400
    ext = current_app.extensions
    data = chart_data.series(conn, ext["fieldpost_codecs"], ext["fieldpost_numbers"], device, window)
    data["timezone"] = zone
    return _compressed(jsonify(data))


def _compressed(response):
    """Chart data is numbers, mostly repeated digits: gzip makes it a fraction of its size for a
    phone on a weak site Wi-Fi. Only this JSON is compressed: it holds no secret and reflects nothing
    typed, so compressing it cannot leak a token the way compressed pages could (BREACH)."""
    if "gzip" not in request.headers.get("Accept-Encoding", "") or len(response.get_data()) < 1024:
        return response
    response.set_data(gzip.compress(response.get_data(), compresslevel=5))
    response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")
    return response


def _chart_window(args, zone: str) -> chart_data.Window:
    try:
        points = int(args.get("points", chart_data.DEFAULT_POINTS))
    except ValueError:
        raise ValidationError("points", "points must be a whole number of pixels.") from None
    points = min(max(points, chart_data.MIN_POINTS), chart_data.MAX_POINTS)
    if args.get("start") or args.get("end"):
        start, end = (_instant(args.get(name, ""), zone, name) for name in ("start", "end"))
        if not end > start:
            raise ValidationError("end", "The end must be after the start.")
        if end - start > chart_data.MAX_SPAN_S:
            raise ValidationError("start", "Choose at most 400 days.")
        return chart_data.Window(start, end, points)
    name = args.get("range") or args.get("window") or "24h"
    if name not in chart_data.RANGES:
        raise ValidationError("range", "Use 1h, 24h, 7d, 30d, or a start and an end.")
    t = now()
    return chart_data.Window(t - chart_data.RANGES[name], t + 0.001, points)


def _instant(text: str, zone: str, field: str) -> float:
    text = (text or "").strip()
    if not text:
        raise ValidationError(field, f"Give both a start and an end ({field} is missing).")
    try:
        value = float(text)
    except ValueError:
        try:
            return site_time.parse_local(text, zone)
        except ValidationError as exc:
            raise ValidationError(field, exc.message) from None
    if not math.isfinite(value) or not 0 <= value < 2**33:
        raise ValidationError(field, f"{field} is not a time.")
    return value


@bp.route("/devices/<device_id>/downlinks", methods=["POST"])
@role_required("operator")
def send_downlink(device_id: str):
    _device_or_404(device_id)
    form = DownlinkForm()
    if form.validate_on_submit():
        args = form.args()
        if not (form.seconds.errors or form.output.errors or form.value.errors):
            try:
                with write() as conn:
                    dl_id = downlinks.queue(
                        conn,
                        device_id,
                        form.command.data,
                        args,
                        source="panel",
                        now=now(),
                    )
                    audit.record(
                        conn,
                        actor=actor(),
                        action="downlink.queue",
                        target=device_id,
                        detail={
                            "downlink": dl_id,
                            "command": form.command.data,
                            "args": args,
                        },
                        now=now(),
                    )
            except ValidationError as exc:
                show_error(form, exc, fallback=form.command)
            else:
                flash(f"Downlink {dl_id} queued: it goes out with the module's next uplink.")
                return redirect(url_for("devices.show", device_id=device_id) + "#downlinks")
    context = device_context(device_id)
    return render_template(
        "device.html",
        form=form,
        delete_form=DeleteDataForm(device_id),
        cursor="",
        **context,
    ), 400


@bp.route("/devices/<device_id>/delete-data", methods=["POST"])
@role_required("admin")
def delete_data(device_id: str):
    """The one way a person changes stored readings: delete all of a device's, after typing its id."""
    _device_or_404(device_id)
    form = DeleteDataForm(device_id)
    if form.validate_on_submit():
        readings = _delete_readings(device_id)
        flash(f"Deleted {readings} readings of {device_id}.")
        return redirect(url_for("devices.show", device_id=device_id))
    context = device_context(device_id)
    return render_template("device.html", form=DownlinkForm(), delete_form=form, cursor="", **context), 400


def _delete_readings(device_id: str) -> int:
    """Delete every reading the device has stored, synced or not (what the cloud has not had yet
    must not leave the site after the operator deleted it); return how many went.

    The decision is audited first, then the readings go in short transactions, oldest first, so
    the ingest writer never waits long for the lock. Readings that arrive meanwhile are kept.
    """
    with write() as conn:
        low, last = 0, -1  # a device never heard from has nothing stored
        stored = unsynced = 0
        number = numbers.number_of(conn, device_id)
        found = None if number is None else store_readings.last_id(conn, number)
        if number is not None and found is not None:
            low, last = store_readings.device_bounds(number)[0], found
            stored = store_readings.count_between(conn, low, last)
            synced_to = cursor.load(conn).get(number, low - 1)
            unsynced = store_readings.count_between(
                conn, max(low, synced_to + 1), last, ports=store_readings.SYNCED_PORTS
            )
        audit.record(
            conn,
            actor=actor(),
            action="device.delete_data",
            target=device_id,
            detail={"readings": stored, "unsynced": unsynced},
            now=now(),
        )
    deleted = 0
    while low <= last:
        with write() as conn:
            end = _chunk_end(conn, low, last)
            deleted += store_readings.delete_between(conn, low, end)
        low = end + 1
    return deleted


def _chunk_end(conn, low: int, high: int) -> int:
    """The id that ends a chunk of DELETE_CHUNK stored readings starting at ``low`` (at most ``high``)."""
    row = conn.execute(
        "SELECT id FROM readings WHERE id BETWEEN ? AND ? ORDER BY id LIMIT 1 OFFSET ?",
        (low, high, DELETE_CHUNK - 1),
    ).fetchone()
    return high if row is None else row[0]


@bp.route("/quarantine")
def quarantine():
    return render_template(
        "quarantine.html",
        rows=queries.quarantine(get_db()),
        form=AdoptForm(),
        errors_for=None,
    )


@bp.route("/quarantine/<device_id>/adopt", methods=["POST"])
@role_required("operator")
def adopt(device_id: str):
    conn = get_db()
    if conn.execute("SELECT 1 FROM quarantine WHERE device_id = ?", (device_id,)).fetchone() is None:
        abort(404)
    form = AdoptForm()
    if form.validate_on_submit():
        try:
            key = registry.parse_key(form.key.data)
            registry.adopt(
                conn,
                device_id,
                key=key,
                name=(form.name.data or "").strip(),
                actor=actor(),
                now=now(),
            )
        except ValidationError as exc:
            show_error(form, exc, fallback=form.key)
        else:
            flash(f"Adopted {device_id}: its next uplink will be stored.")
            return redirect(url_for("devices.show", device_id=device_id))
    return render_template(
        "quarantine.html",
        rows=queries.quarantine(conn),
        form=form,
        errors_for=device_id,
    ), 400
