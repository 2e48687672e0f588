"""Modules in the browser: the list (nodes and bridges), add, edit (name, board profile, codec,
interval), remove with a typed confirmation, show and rotate a key. Adopting from quarantine is on
the quarantine page (devices.adopt).

Roles: editing is for operators; adding, removing and anything that shows a key is for admins,
and every key shown or changed is in the audit log.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from wtforms import SelectChoice

from edge.codecs import available as available_codecs
from edge.errors import ValidationError
from edge.fuota import jobs as fuota_jobs
from provisioning.boards import board_names
from webui import audit, bridges, queries
from webui.db import get_db, now, write
from webui.edge_adapters import downlinks, registry
from webui.forms import ActionForm, DeleteDataForm, DeviceAddForm, DeviceEditForm, show_error
from webui.views.auth import actor, role_required

bp = Blueprint("manage", __name__)


def _choices(form, device=None) -> None:
    """Board profiles and codecs to choose from; a module's own (an older profile, a codec plug-in
    since removed) stays choosable, so saving its name does not fail on a field nobody touched."""
    boards = ["", *board_names()]
    codecs = list(available_codecs())
    if device is not None:
        boards += [device["board"]] if device["board"] not in boards else []
        codecs += [device["codec"]] if device["codec"] not in codecs else []
    form.board.choices = [SelectChoice(b, b or "(none)") for b in boards]
    form.codec.choices = [SelectChoice(c, c) for c in codecs]


def _device_or_404(device_id: str):
    device = queries.get_device(get_db(), device_id)
    if device is None:
        abort(404)
    return device


def _list_page(status: int = 200, *, add_form=None, new_key=None):
    conn = get_db()
    t = now()
    cfg = current_app.config
    add_form = add_form or DeviceAddForm(formdata=None)
    _choices(add_form)
    nodes = []
    for row in conn.execute("SELECT * FROM devices WHERE role = 'node' ORDER BY name, id"):
        d = queries.device_dict(row)
        d["online"] = queries.is_online(row, t, cfg["ONLINE_INTERVALS"])
        nodes.append(d)
    return (
        render_template(
            "devices.html",
            nodes=nodes,
            bridges=bridges.overview(
                conn,
                current_app.extensions.get("fieldpost_links"),
                now=t,
                online_intervals=cfg["ONLINE_INTERVALS"],
            ),
            add_form=add_form,
            new_key=new_key,
            updates=fuota_jobs.listing(conn, limit=20),
            now=t,
        ),
        status,
    )


@bp.route("/devices")
def index():
    return _list_page()


@bp.route("/devices/add", methods=["POST"])
@role_required("admin")
def add():
    form = DeviceAddForm()
    _choices(form)
    if not form.validate_on_submit():
        return _list_page(400, add_form=form)
    device_id = (form.device_id.data or "").strip().lower() or registry.new_device_id()
    try:
        key = registry.parse_key(form.key.data) if (form.key.data or "").strip() else None
        conn = get_db()
        if queries.get_device(conn, device_id) is not None:
            raise ValidationError(
                "device_id", f"{device_id} is registered already; rotate its key on its page."
            )
        key = registry.add_device(
            conn,
            device_id,
            key=key,
            name=(form.name.data or "").strip(),
            codec=form.codec.data,
            board=form.board.data or "",
            role=form.role.data,
            interval_s=form.interval_s.data,
            actor=actor(),
            now=now(),
        )
    except ValidationError as exc:
        show_error(form, exc, fallback=form.device_id)
        return _list_page(400, add_form=form)
    flash(f"Module {device_id} added.")
    return _list_page(201, new_key={"device_id": device_id, "key": key.hex()})


def _device_page(device, status: int = 200, *, edit_form=None, remove_form=None, key_shown=None):
    edit_form = edit_form or DeviceEditForm(
        formdata=None,
        name=device["name"],
        board=device["board"],
        codec=device["codec"],
        interval_s=device["interval_s"],
    )
    _choices(edit_form, device)
    return (
        render_template(
            "device_manage.html",
            device=queries.device_dict(device),
            edit_form=edit_form,
            remove_form=remove_form or DeleteDataForm(device["id"], formdata=None),
            action_form=ActionForm(formdata=None),
            key_shown=key_shown,
        ),
        status,
    )


@bp.route("/devices/<device_id>/manage")
@role_required("operator")
def manage(device_id: str):
    return _device_page(_device_or_404(device_id))


@bp.route("/devices/<device_id>/edit", methods=["POST"])
@role_required("operator")
def edit(device_id: str):
    device = _device_or_404(device_id)
    form = DeviceEditForm()
    _choices(form, device)
    if not form.validate_on_submit():
        return _device_page(device, 400, edit_form=form)
    new = {
        "name": (form.name.data or "").strip(),
        "board": form.board.data or "",
        "codec": form.codec.data,
        "interval_s": int(form.interval_s.data),
    }
    changes = {k: [device[k], v] for k, v in new.items() if device[k] != v}
    if not changes:
        flash("Nothing changed.")
        return redirect(url_for("manage.manage", device_id=device_id))
    with write() as conn:
        conn.execute(
            "UPDATE devices SET name = ?, board = ?, codec = ?, interval_s = ? WHERE id = ?",
            (new["name"], new["board"], new["codec"], new["interval_s"], device_id),
        )
        dl_id = None
        if "interval_s" in changes and form.send_interval.data:
            dl_id = downlinks.queue(
                conn, device_id, "set_interval", {"seconds": new["interval_s"]}, source="panel", now=now()
            )
            changes["downlink"] = dl_id
        audit.record(conn, actor=actor(), action="device.update", target=device_id, detail=changes, now=now())
    flash(
        f"Module {device_id} saved"
        + (f"; the new interval goes to the module as downlink #{dl_id}." if dl_id else ".")
    )
    return redirect(url_for("manage.manage", device_id=device_id))


@bp.route("/devices/<device_id>/remove", methods=["POST"])
@role_required("admin")
def remove(device_id: str):
    device = _device_or_404(device_id)
    form = DeleteDataForm(device_id)
    if not form.validate_on_submit():
        return _device_page(device, 400, remove_form=form)
    deleted = registry.remove_device(get_db(), device_id, purge=True, actor=actor(), now=now())
    flash(
        f"Module {device_id} removed; {deleted} of its readings the cloud already had were deleted"
        " (any it has not had yet are kept until they are sent)."
    )
    return redirect(url_for("manage.index"))


@bp.route("/devices/<device_id>/key", methods=["POST"])
@role_required("admin")
def show_key(device_id: str):
    device = _device_or_404(device_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    with write() as conn:
        audit.record(conn, actor=actor(), action="device.show_key", target=device_id, now=now())
    return _device_page(device, key_shown={"key": bytes(device["key"]).hex(), "rotated": False})


@bp.route("/devices/<device_id>/rotate-key", methods=["POST"])
@role_required("admin")
def rotate_key(device_id: str):
    device = _device_or_404(device_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    key = registry.rotate_key(get_db(), device_id, actor=actor(), now=now())  # audited by the registry
    device = _device_or_404(device_id)
    return _device_page(device, key_shown={"key": key.hex(), "rotated": True})
