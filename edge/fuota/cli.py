"""`fieldpost firmware`: the update bundles the edge keeps and the packages made from them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge.cli import Context, _fail, pass_ctx
from edge.errors import FieldpostError, UpdateError
from edge.fuota.store import BundleStore

STORE_FOLDER = "firmware"  # beside the database: on the Pi, /var/lib/fieldpost/firmware


def bundle_store(ctx: Context) -> BundleStore:
    return BundleStore(ctx.db_path.parent / STORE_FOLDER)


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
