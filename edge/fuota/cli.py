"""`fieldpost firmware`: the update bundles the edge keeps and the packages made from them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge.cli import Context, _fail, pass_ctx
from edge.errors import FieldpostError, UpdateError
from edge.fuota import updates
from edge.fuota.store import BundleStore
from edge.store import transaction


def bundle_store(ctx: Context) -> BundleStore:
    return updates.bundle_store(ctx.db_path)


@click.group("firmware")
def firmware_group() -> None:
    """Firmware bundles kept for module updates, and update packages (full or delta)."""


@firmware_group.command("keep")
@click.argument("bundles", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def keep_command(ctx: Context, bundles: tuple[Path, ...]) -> None:
    """Keep built board bundles (build/firmware/<board>/ from `make firmware`)."""
    store = bundle_store(ctx)
    for bundle in bundles:
        try:
            manifest = store.keep(bundle)
        except FieldpostError as exc:
            raise _fail(exc) from exc
        click.echo(
            f"kept {manifest.board} {manifest.version}: {len(manifest.files)} files, {manifest.total_size} bytes"
        )


@firmware_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def list_command(ctx: Context, as_json: bool) -> None:
    """Kept bundles per board, and how many registered modules run each version."""
    store = bundle_store(ctx)
    running: dict[tuple[str, str], int] = {}
    if ctx.db_path.exists():
        with ctx.db() as conn:
            for board, version, n in conn.execute(
                "SELECT board, firmware, count(*) FROM devices WHERE firmware != '' GROUP BY board, firmware"
            ):
                running[(board, version)] = n
    rows = []
    for board in store.boards():
        for version in store.versions(board):
            manifest, _ = store.bundle(board, version)
            rows.append(
                {
                    "board": board,
                    "version": version,
                    "files": len(manifest.files),
                    "bytes": manifest.total_size,
                    "min_previous": manifest.min_previous,
                    "modules_running": running.get((board, version), 0),
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(f"no bundles kept in {store.root} (fieldpost firmware keep build/firmware/<board>)")
        return
    click.echo(f"{'board':<14}{'version':<10}{'files':>6}{'bytes':>10}  {'from':<8}{'modules':>8}")
    for r in rows:
        click.echo(
            f"{r['board']:<14}{r['version']:<10}{r['files']:>6}{r['bytes']:>10}  "
            f"{r['min_previous']:<8}{r['modules_running']:>8}"
        )


@firmware_group.command("package")
@click.argument("board")
@click.argument("version")
@click.option("--running", help="The version on the module (a delta from it if that bundle is kept).")
@click.option("--device", "device_id", help="Take the board's running version from this registered module.")
@click.option("--full", is_flag=True, help="Every file, even those the module already has.")
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Package file to write.",
)
@pass_ctx
def package_command(
    ctx: Context, board: str, version: str, running: str | None, device_id: str | None, full: bool, out: Path
) -> None:
    """Write the update package that moves a module of BOARD to VERSION."""
    if device_id:
        with ctx.db() as conn:
            row = conn.execute("SELECT board, firmware FROM devices WHERE id = ?", (device_id,)).fetchone()
        if row is None:
            raise click.ClickException(f"no registered module {device_id}")
        if row[0] and row[0] != board:
            raise click.ClickException(f"module {device_id} is a {row[0]}, not a {board}")
        running = row[1] or None
    try:
        plan, data = bundle_store(ctx).package_for(board, version, running, full=full)
    except UpdateError as exc:
        raise _fail(exc) from exc
    out.write_bytes(data)
    kind = f"delta from {plan.base.version}" if plan.base else "full"
    click.echo(
        f"{out}: {board} {version}, {kind}: {len(plan.changed)} files ({plan.payload_size} bytes), "
        f"{len(plan.removed)} removed, {len(data)} bytes packed"
    )


# --- module updates ------------------------------------------------------------------------------


@click.group("modules")
def modules_group() -> None:
    """Firmware updates of registered modules (bridges over their serial link, nodes over the air)."""


@modules_group.command("update")
@click.option("--device", "device_ids", multiple=True, help="A module to update (repeatable).")
@click.option("--board", help="Every registered module (bridge or node) of this board profile.")
@click.option("--version", "version", required=True, help="The kept firmware version to install.")
@click.option("--full", is_flag=True, help="Send every file, not a delta.")
@click.option(
    "--max-in-flight",
    type=click.IntRange(min=1),
    help="Nodes: at most this many air updates under way at once (the others wait their turn).",
)
@click.option(
    "--dr",
    type=click.IntRange(min=0, max=15),
    default=0,
    show_default=True,
    help="Nodes: the data rate the estimate assumes (0: the slowest).",
)
@click.option(
    "--wait", "wait_s", type=float, default=0, help="Wait up to this many seconds, showing progress."
)
@click.option("--json", "as_json", is_flag=True, help="Print the queued updates as JSON.")
@pass_ctx
def update_command(
    ctx: Context,
    device_ids: tuple[str, ...],
    board: str | None,
    version: str,
    full: bool,
    max_in_flight: int | None,
    dr: int,
    wait_s: float,
    as_json: bool,
) -> None:
    """Queue firmware updates; the running daemon sends them: to a bridge when its link is up, to a
    node in fragment sessions it opens after an offer on the ACK of its next reading."""
    import time

    from edge.fuota import updates

    with ctx.db() as conn:
        try:
            planned = updates.plan(
                conn,
                bundle_store(ctx),
                device_ids=device_ids,
                board=board,
                version=version,
                full=full,
                dr=dr,
                energy_mah_day=ctx.config.updates.energy_mah_day,
            )
            with transaction(conn):
                report = updates.queue_planned(
                    conn,
                    planned,
                    db_path=ctx.db_path,
                    max_in_flight=max_in_flight,
                    actor="cli",
                    now=time.time(),
                )
        except UpdateError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        for entry in report:
            line = (
                f"queued update {entry['job']}: {entry['device_id']} {entry['from'] or '?'} -> {entry['to']}"
                f" ({entry['kind']}, {entry['bytes']} bytes)"
            )
            if entry["transport"] == "air" and entry["estimate"]:
                line += ", over the air: " + updates.estimate_text(entry["estimate"])
            click.echo(line)
    if wait_s > 0:
        _wait(ctx, [entry["job"] for entry in report], wait_s)


def _wait(ctx: Context, job_ids: list[int], wait_s: float) -> None:
    """A progress bar per module, drawn again whenever one moves, until all ended or ``wait_s``."""
    import time

    from edge.fuota import jobs

    deadline = time.monotonic() + wait_s
    shown: dict[int, tuple] = {}
    current: list[jobs.Job] = []
    while time.monotonic() < deadline:
        with ctx.db() as conn:
            current = [j for j in (jobs.get(conn, i) for i in job_ids) if j is not None]
        for j in current:
            done = j.size if j.state not in ("queued", "sending") else j.sent
            key = (j.state, done)
            if shown.get(j.id) != key:
                shown[j.id] = key
                click.echo(_bar(j.device_id, done, j.size, j.state))
        if all(j.state in jobs.ENDED for j in current):
            break
        time.sleep(0.5)
    failed = []
    for j in current:
        click.echo(
            f"update {j.id}: {j.device_id} {j.version}: {j.state}" + (f" ({j.error})" if j.error else "")
        )
        if j.state != "done":
            failed.append(j)
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(job_ids)} updates did not finish as done")


def _bar(device_id: str, done: int, size: int, state: str, width: int = 30) -> str:
    filled = width * done // size if size else width
    return f"{device_id} [{'#' * filled}{'.' * (width - filled)}] {100 * done // max(size, 1):>3}% {done}/{size} {state}"


@modules_group.command("updates")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def updates_command(ctx: Context, as_json: bool) -> None:
    """Recent firmware updates: state, bytes sent, how they ended."""
    from edge.fuota import jobs

    with ctx.db() as conn:
        rows = jobs.listing(conn)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        click.echo(
            f"{r['id']:>4} {r['device_id']} {r['from_version'] or '?'} -> {r['version']:<8} {r['state']:<11} "
            f"{r['transport']:<6} {r['sent']}/{r['size']}" + (f"  {r['error']}" if r["error"] else "")
        )


@modules_group.command("cancel")
@click.argument("device_id")
@pass_ctx
def cancel_command(ctx: Context, device_id: str) -> None:
    """Cancel a module's queued or sending update (a staged one is already on the module)."""
    import time

    from edge.fuota import jobs
    from edge.registry import audit

    now = time.time()
    with ctx.db() as conn, transaction(conn):
        n = jobs.cancel(conn, device_id, now=now)
        if n:
            audit(
                conn,
                actor="cli",
                action="module.update.cancel",
                target=device_id,
                detail={"cancelled": n},
                now=now,
            )
    click.echo(f"cancelled {n} update(s) of {device_id}")
