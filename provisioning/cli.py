"""Click commands of the provisioning area, registered under `fieldpost` by edge/cli.py:

- ``init_command``: `fieldpost init`, a blank Pi into an appliance;
- ``provision_group``: `fieldpost provision module|batch`, blank modules into registered ones.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import click

from edge import config as edge_config
from edge.errors import FieldpostError, ProvisioningError, ValidationError
from edge.progress import progress_bar
from provisioning.init import DEFAULT_CONFIG, DEFAULT_DB, DEFAULT_TLS_DIR, UNITS_DIR, InitOptions, run_init
from provisioning.manifest import read_manifest
from provisioning.module import ROLES, ModuleSpec, ProvisionResult, machine_reset, provision_module


class _AbsPath(click.Path):
    def convert(self, value, param, ctx):
        return Path(super().convert(value, param, ctx))


@click.command("init")
@click.option(
    "--root",
    type=_AbsPath(file_okay=False),
    default="/",
    show_default=True,
    help="Install into this directory instead of the live system (image builds, tests).",
)
@click.option(
    "--config",
    "config_path",
    type=_AbsPath(),
    default=str(DEFAULT_CONFIG),
    show_default=True,
    help="Configuration file to write (kept if it exists).",
)
@click.option(
    "--db",
    type=_AbsPath(),
    default=str(DEFAULT_DB),
    show_default=True,
    help="SQLite buffer to create and migrate (a new config only; an existing one names its own).",
)
@click.option(
    "--tls-dir",
    type=_AbsPath(),
    default=str(DEFAULT_TLS_DIR),
    show_default=True,
    help="Where the panel's self-signed certificate and key go.",
)
@click.option("--site", default="site", show_default=True, help="Site name, as the cloud will see it.")
@click.option("--admin", default="admin", show_default=True, help="User name of the panel's first admin.")
@click.option(
    "--ask-password/--generate-password",
    default=None,
    help="Ask for the admin password, or generate one and show it once. "
    "Default: ask on a terminal, generate otherwise.",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Host name or IP address the panel certificate is for (repeatable). "
    "Default: this host's name, <name>.local, localhost, 127.0.0.1.",
)
@click.option("--systemd", is_flag=True, help="Install and enable the systemd units.")
@click.option(
    "--units-dir",
    type=_AbsPath(file_okay=False),
    default=str(UNITS_DIR),
    show_default=True,
    help="Where the systemd unit files come from.",
)
@click.option(
    "--system-only",
    is_flag=True,
    help="Only the database, the panel certificate, the fieldpost user and groups, owners and modes: "
    "what the Debian package's postinst runs (the package ships the config, unit and udev rule).",
)
def init_command(
    root, config_path, db, tls_dir, site, admin, ask_password, hosts, systemd, units_dir, system_only
):
    """Set up this machine as a Fieldpost appliance.

    Writes the configuration, creates and migrates the database, creates the admin
    user, makes a self-signed certificate for the panel, installs the udev rule that
    gives module ports stable names under /dev/fieldpost/, creates the system user
    fieldpost (groups dialout and gpio) and gives it its files, and with --systemd
    installs and enables the services. Safe to run again: what exists is kept.
    """
    if system_only:
        ask_password = False
    if ask_password is None:
        ask_password = sys.stdin.isatty()
    password = None
    if ask_password:
        password = click.prompt(f"Password for {admin}", hide_input=True, confirmation_prompt=True)
    opts = InitOptions(
        root=root,
        config=config_path,
        db=db,
        tls_dir=tls_dir,
        site=site,
        admin=admin,
        password=password,
        hosts=list(hosts),
        systemd=systemd,
        units_dir=units_dir,
        system_only=system_only,
    )
    try:
        report = run_init(opts, now=time.time())
    except FieldpostError as exc:
        raise click.ClickException(str(exc)) from None
    for step, outcome in report.steps:
        click.echo(f"{step:12} {outcome}")
    if report.generated_password:
        click.echo("")
        click.secho(
            f"Admin password for {admin!r} (shown only now, write it down): {report.generated_password}",
            bold=True,
        )


@click.group("provision")
def provision_group():
    """Provision modules: firmware, identity and key, registration with this edge."""


STAGES = (
    "connect",
    "compile",
    "mark",
    "copy",
    "packages",
    "verify",
    "config",
    "register",
    "release",
    "reset",
    "hello",
    "uplink",
)


def _parse_settings(pairs: tuple[str, ...]) -> dict:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value  # a bare word is a string
    return settings


def _db_path(ctx: click.Context, config_path: Path | None, db: Path | None) -> Path:
    """--db, else --config's [edge] db, else what the `fieldpost` group was given (--db/--config)."""
    if db is not None:
        return db
    try:
        if config_path is None and hasattr(ctx.obj, "db_path"):
            return Path(ctx.obj.db_path)
        return Path(edge_config.load(config_path).edge.db)
    except FieldpostError as exc:
        raise click.ClickException(str(exc)) from None


def _module_options(f):
    options = [
        click.option(
            "--config",
            "config_path",
            type=_AbsPath(dir_okay=False),
            default=None,
            help="Edge configuration file (for the database path). Default: FIELDPOST_CONFIG or "
            "/etc/fieldpost/fieldpost.toml.",
        ),
        click.option(
            "--db",
            type=_AbsPath(dir_okay=False),
            default=None,
            help="Edge database to register with (overrides the configuration).",
        ),
        click.option(
            "--package",
            "packages",
            multiple=True,
            help="Extra mip package to install (repeatable); the radio driver is in the firmware bundle.",
        ),
        click.option(
            "--offline-packages",
            type=_AbsPath(file_okay=False, exists=True),
            default=None,
            help="Install --package packages from this local index (a copy of micropython.org/pi/v2) "
            "instead of the internet.",
        ),
        click.option("--no-reset", is_flag=True, help="Leave the module in its REPL; do not wait for HELLO."),
        click.option(
            "--timeout",
            default=10.0,
            show_default=True,
            type=float,
            help="Seconds to wait for the module's REPL.",
        ),
        click.option(
            "--hello-timeout",
            default=15.0,
            show_default=True,
            type=float,
            help="Seconds to wait for the HELLO after the reset.",
        ),
        click.option(
            "--wait-uplink",
            type=float,
            default=None,
            metavar="SECONDS",
            help="After the reset, wait until the edge has stored an uplink from the module "
            "(for nodes: needs `fieldpost run` and a bridge in range).",
        ),
        click.option(
            "--cache-dir",
            type=_AbsPath(file_okay=False),
            default=None,
            help="Where compiled firmware is cached. Default: ~/.cache/fieldpost/firmware.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _cache_dir(cache_dir: Path | None) -> Path:
    return cache_dir or Path.home() / ".cache" / "fieldpost" / "firmware"


def _reset_hook(ctx: click.Context):
    # A caller (the tests, the demo) may pass a reset for modules without machine.reset(),
    # e.g. a virtual module whose "reset" is a process restart: ctx.obj = {"reset": fn}.
    if isinstance(ctx.obj, dict) and "reset" in ctx.obj:
        return ctx.obj["reset"]
    return machine_reset


def _runner(
    ctx,
    *,
    config_path,
    db,
    packages,
    offline_packages,
    no_reset,
    timeout,
    hello_timeout,
    wait_uplink,
    cache_dir,
):
    """The options of _module_options as one function: run(spec, show_progress) -> ProvisionResult."""
    db_path = _db_path(ctx, config_path, db)
    reset = None if no_reset else _reset_hook(ctx)

    def run(spec: ModuleSpec, *, show_progress: bool):
        spec.packages = list(packages)
        spec.offline_packages = offline_packages
        with click.progressbar(
            length=len(STAGES),
            label=f"{spec.port}",
            show_eta=False,
            item_show_func=lambda item: item,
            file=None if show_progress else io.StringIO(),
        ) as bar:
            seen = []

            def progress(stage: str, detail: str) -> None:
                if stage not in seen:
                    seen.append(stage)
                    bar.update(1, f"{stage}: {detail}")
                else:
                    bar.update(0, f"{stage}: {detail}")

            result = provision_module(
                spec,
                db_path=db_path,
                cache_dir=_cache_dir(cache_dir),
                reset=reset,
                repl_timeout=timeout,
                hello_timeout=hello_timeout,
                wait_uplink=None if no_reset else wait_uplink,
                progress=progress,
            )
            bar.update(len(STAGES) - len(seen), "done")
        return result

    return run


def _summary(result: ProvisionResult) -> list[str]:
    lines = [
        f"device     {result.device_id} ({result.role}, board {result.board})",
        f"files      {len(result.copied)} copied, {len(result.unchanged)} unchanged, all verified",
    ]
    if result.driver:
        lines.append(f"driver     {', '.join(result.driver)} (in the bundle)")
    if result.resumed:
        lines.append("resumed    an unfinished provisioning of this module was completed")
    if result.packages:
        lines.append("packages   " + ", ".join(f"{k}: {v}" for k, v in result.packages.items()))
    lines.append(f"edge       {result.registration}" + (" (new key)" if result.key_rotated else ""))
    if result.hello:
        lines.append(
            f"hello      fw {result.hello.get('fw')}, role {result.hello.get('role')}, "
            f"board {result.hello.get('board')}"
        )
    if result.uplink_at is not None:
        lines.append("uplink     stored by the edge")
    if result.journal_pending_at_rotation:
        lines.append(
            f"note       {result.journal_pending_at_rotation} reading(s) waiting in the module's journal will be sent signed "
            "with the new key"
        )
    lines.append("result     " + ("changed" if result.changed else "nothing to change"))
    return lines


def _failure(exc: FieldpostError) -> str:
    if isinstance(exc, ValidationError):
        return f"--{exc.field.replace('_', '-')}: {exc.message}; nothing was changed"
    if isinstance(exc, ProvisioningError) and exc.step in ("hello", "uplink"):
        return f"{exc}. The module is written and registered with the edge; check its log and run again"
    if isinstance(exc, ProvisioningError) and exc.step == "release":
        return (
            f"{exc}. The edge has registered the device as the module holds it; the module is still "
            "marked as being provisioned (its firmware will not run): run again"
        )
    return f"{exc}; nothing was registered with the edge"


@provision_group.command("module")
@click.option(
    "--port", required=True, help="Serial port of the module, e.g. /dev/ttyUSB0 or /dev/fieldpost/..."
)
@click.option("--board", required=True, help="Board profile name (hardware/boards/<name>.json).")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the module will be.")
@click.option(
    "--id", "device_id", default=None, help="Device id, 16 hex digits. Default: the module's own, else new."
)
@click.option("--name", default="", help="A name for the device in the panel.")
@click.option("--region", default=None, help="Radio region, e.g. EU868. Default: the board profile's.")
@click.option("--dr", type=int, default=None, help="Data rate index within the region.")
@click.option("--interval", type=int, default=None, help="Seconds between readings (10 .. 86400).")
@click.option("--rotate-key", is_flag=True, help="Give the module a new key, on the module and in the edge.")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Further config.json key (VALUE as JSON, else a string); repeatable.",
)
@_module_options
@click.pass_context
def provision_module_command(
    ctx, port, board, role, device_id, name, region, dr, interval, rotate_key, settings, **options
):
    """Turn the module on PORT into a registered Fieldpost module.

    Needs no internet. Compiles the firmware and the board's radio driver (vendored
    micropython-lib lora) with mpy-cross, marks the module as being provisioned, copies
    the bundle with mpremote (files whose hash already matches are skipped) and reads
    every file back to verify its hash, then writes the identity and a random key into
    config.json (last, verified too), registers the device and key with the edge,
    removes the mark, resets the module and waits for its HELLO. Killed at any step,
    the module is left as it was or marked unprovisioned (its firmware will not run)
    and the edge has registered nothing; run it again to finish. Running it again
    after success changes nothing; --rotate-key replaces the key on both sides.
    """
    spec = ModuleSpec(
        port=port,
        board=board,
        role=role,
        device_id=device_id,
        name=name,
        region=region,
        dr=dr,
        interval=interval,
        rotate_key=rotate_key,
        settings=_parse_settings(settings),
    )
    run = _runner(ctx, **options)
    try:
        result = run(spec, show_progress=True)
    except FieldpostError as exc:
        raise click.ClickException(_failure(exc)) from None
    for line in _summary(result):
        click.echo(line)


@provision_group.command("batch")
@click.argument("manifest", type=_AbsPath(dir_okay=False, exists=True))
@_module_options
@click.pass_context
def provision_batch_command(ctx, manifest, **options):
    """Provision every module listed in a CSV MANIFEST, one result line per row.

    Columns: port, board, role (required), id, name, region, dr, interval, and 'set'
    (further config.json keys as a JSON object). A failing row does not stop the
    others; the exit status is non-zero when any row failed.
    """
    try:
        rows = read_manifest(manifest)
    except FieldpostError as exc:
        raise click.ClickException(str(exc)) from None
    run = _runner(ctx, **options)
    failed = 0
    with progress_bar("provisioning") as progress:
        for done, (line, spec) in enumerate(rows, 1):
            try:
                result = run(spec, show_progress=False)
            except FieldpostError as exc:
                failed += 1
                click.echo(f"row {line}  {spec.port}  FAILED  {_failure(exc)}")
                continue
            finally:
                if progress is not None:
                    progress(done, len(rows))
            click.echo(
                f"row {line}  {spec.port}  ok  {result.device_id}  {result.registration}  "
                f"{len(result.copied)} copied"
            )
    click.echo(f"{len(rows) - failed} of {len(rows)} modules provisioned")
    if failed:
        ctx.exit(1)
