"""Modules in the browser: the list (nodes and bridges), add, edit (name, board profile, codec,
interval), remove with a typed confirmation, show and rotate a key. Adopting from quarantine is on
the quarantine page (devices.adopt).

Roles: editing is for operators; adding, removing and anything that shows a key is for admins,
and every key shown or changed is in the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from wtforms import SelectChoice

from edge.codecs import available as available_codecs
from edge.errors import UpdateRefused, ValidationError
from edge.fuota import jobs as fuota_jobs
from edge.fuota import updates as fuota_updates
from edge.fuota.config import UpdatesSection
from provisioning.boards import board_names
from webui import audit, bridges, queries
from webui.db import get_db, now, write
from webui.edge_adapters import downlinks, registry
from webui.forms import (
    ActionForm,
    DeleteDataForm,
    DeviceAddForm,
    DeviceEditForm,
    ModuleUpdateForm,
    show_error,
)
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


def _bundles() -> fuota_updates.BundleStore:
    """The firmware bundles the edge keeps (`fieldpost firmware keep`), beside the database."""
    return fuota_updates.bundle_store(Path(current_app.config["DATABASE"]))


def _update_choices(form: ModuleUpdateForm, conn) -> None:
    """Every registered module with a board, every board with modules, every kept version."""
    modules = conn.execute(
        "SELECT id, name, board, role, firmware FROM devices WHERE board != '' ORDER BY board, name, id"
    ).fetchall()
    boards: dict[str, int] = {}
    for m in modules:
        boards[m["board"]] = boards.get(m["board"], 0) + 1
    form.target.choices = (
        [SelectChoice("", "(pick one)")]
        + [
            SelectChoice(
                f"device:{m['id']}",
                f"{m['name'] or m['id']} ({m['role']}, {m['board']}, runs {m['firmware'] or '?'})",
            )
            for m in modules
        ]
        + [SelectChoice(f"board:{b}", f"every module of board {b} ({n})") for b, n in boards.items()]
    )
    store = _bundles()
    kept: dict[str, list[str]] = {}
    for board in store.boards():
        for version in store.versions(board):
            kept.setdefault(version, []).append(board)
    form.version.choices = [SelectChoice("", "(pick one)")] + [
        SelectChoice(v, f"{v} ({', '.join(b)})") for v, b in kept.items()
    ]


_ENERGY_DEFAULT = UpdatesSection.energy_mah_day


def _plan(conn, form: ModuleUpdateForm) -> list[fuota_updates.Planned]:
    """The same checks and packages as `fieldpost modules update`; a refusal as a ValidationError
    naming the form's field."""
    kind, _, name = form.target.data.partition(":")
    try:
        return fuota_updates.plan(
            conn,
            _bundles(),
            device_ids=[name] if kind == "device" else [],
            board=name if kind == "board" else None,
            version=form.version.data,
            full=bool(form.full.data),
            dr=int(form.dr.data),
            # a panel run without the daemon's config (tests, `flask run`) keeps the shipped default
            energy_mah_day=current_app.config.get("UPDATES_ENERGY_MAH_DAY", _ENERGY_DEFAULT),
        )
    except UpdateRefused as exc:
        raise ValidationError("version" if exc.field == "version" else "target", str(exc)) from None


def _list_page(status: int = 200, *, add_form=None, new_key=None, update_form=None, update_plan=None):
    conn = get_db()
    t = now()
    cfg = current_app.config
    add_form = add_form or DeviceAddForm(formdata=None)
    _choices(add_form)
    update_form = update_form or ModuleUpdateForm(formdata=None)
    _update_choices(update_form, conn)
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
            update_form=update_form,
            update_plan=update_plan,
            action_form=ActionForm(formdata=None),
            now=t,
        ),
        status,
    )


@bp.route("/devices/updates", methods=["POST"])
@role_required("admin")
def start_update():
    """Review (the packages and the estimate the CLI prints), then, confirmed, queue the updates
    through the CLI's own function, audited under the user's name."""
    form = ModuleUpdateForm()
    _update_choices(form, get_db())
    if not form.validate_on_submit():
        return _list_page(400, update_form=form)
    max_in_flight = int(form.max_in_flight.data) if form.max_in_flight.data is not None else None
    try:
        if form.confirmed.data != "yes":
            planned = _plan(get_db(), form)  # shown with a form that sends the same values, confirmed
            review = [
                {
                    **p.summary(),
                    "estimate": fuota_updates.estimate_text(p.estimate) if p.transport == "air" else None,
                }
                for p in planned
            ]
            return _list_page(update_form=form, update_plan=review)
        with write() as conn:
            report = fuota_updates.queue_planned(
                conn,
                _plan(conn, form),
                db_path=Path(current_app.config["DATABASE"]),
                max_in_flight=max_in_flight,
                actor=actor(),
                now=now(),
            )
    except ValidationError as exc:
        show_error(form, exc, fallback=form.target)
        return _list_page(400, update_form=form)
    flash(
        f"Queued {len(report)} firmware update(s) to {form.version.data}: "
        + ", ".join(f"{e['device_id']} (#{e['job']})" for e in report)
        + "."
    )
    return redirect(url_for("manage.index"), 303)


@bp.route("/devices/updates/<int:job_id>/cancel", methods=["POST"])
@role_required("admin")
def cancel_update(job_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    job = fuota_jobs.get(get_db(), job_id)
    if job is None:
        abort(404)
    with write() as conn:
        cancelled = fuota_jobs.cancel_job(conn, job_id, now=now())
        if cancelled:
            audit.record(
                conn,
                actor=actor(),
                action="module.update.cancel",
                target=job.device_id,
                detail={"job": job_id, "version": job.version, "state": job.state},
                now=now(),
            )
    flash(
        f"Update #{job_id} of {job.device_id} cancelled."
        if cancelled
        else f"Update #{job_id} of {job.device_id} is {job.state}: only a queued or sending one can be cancelled."
    )
    return redirect(url_for("manage.index"), 303)


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
    changes: dict[str, Any] = {k: [device[k], v] for k, v in new.items() if device[k] != v}
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
