"""The ``fieldpost`` command: a thin layer over the library (edge.registry, edge.store, edge.daemon).

Every command has help text, and every command is listed in docs/cli.md (a test
checks both). Other areas register their own groups below with a guarded import.
"""

from __future__ import annotations

import csv
import importlib
import json
import sqlite3
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from edge import config as config_mod
from edge import logs, registry
from edge.errors import ConfigError, FieldpostError, ValidationError
from edge.progress import progress_bar
from edge.store import MIGRATIONS, applied_migrations, backlog, connect, migrate, transaction
from edge.store.query import ReadingReader
from edge.store.retention import reclaim


class Context:
    def __init__(self, config_path: str | None, db_override: str | None):
        self.config_path = config_path
        self.db_override = db_override
        self._config: config_mod.Config | None = None

    @property
    def config(self) -> config_mod.Config:
        if self._config is None:
            try:
                self._config = config_mod.load(self.config_path)
            except ConfigError as exc:
                raise click.ClickException(f"configuration: {exc}") from exc
        return self._config

    @property
    def db_path(self) -> Path:
        return Path(self.db_override or self.config.edge.db)

    def connect(self, *, must_exist: bool = True) -> sqlite3.Connection:
        path = self.db_path
        if must_exist and not path.exists():
            raise click.ClickException(f"no database at {path} (run `fieldpost db migrate` to create it)")
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path)
        migrate(conn)
        return conn

    @contextmanager
    def db(self, *, must_exist: bool = True) -> Iterator[sqlite3.Connection]:
        """A migrated connection, closed afterwards; a library error becomes a clean CLI error."""
        conn = self.connect(must_exist=must_exist)
        try:
            yield conn
        except FieldpostError as exc:
            raise _fail(exc) from exc
        finally:
            conn.close()


pass_ctx = click.make_pass_decorator(Context)


def _fail(exc: FieldpostError) -> click.ClickException:
    return click.ClickException(str(exc))


# --- other areas' groups, loaded when asked for -------------------------------------------

# name -> "module:attribute". Imported only when that command runs (or for --help): `fieldpost run`
# then never loads the panel's user tools, provisioning or the GPIO test commands.
EXTERNAL_COMMANDS = {
    "sync": "edge.sync.cli:sync_group",
    "provision": "provisioning.cli:provision_group",
    "init": "provisioning.cli:init_command",
    "rules": "edge.rules.cli:rules_group",
    "notify": "edge.notify.cli:notify_group",
    "webui": "webui.cli:webui_group",
    "users": "webui.cli:users_group",
    "gpio": "edge.gpio.cli:gpio_group",
    "firmware": "edge.fuota.cli:firmware_group",
    "modules": "edge.fuota.cli:modules_group",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *EXTERNAL_COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in EXTERNAL_COMMANDS:
            module_name, attr = EXTERNAL_COMMANDS[name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            self.add_command(command, name)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    # readable=False: edge.config reports an unreadable file itself, with the fix
    type=click.Path(dir_okay=False, readable=False),
    envvar="FIELDPOST_CONFIG",
    help="TOML configuration file (default /etc/fieldpost/fieldpost.toml; env FIELDPOST_CONFIG).",
)
@click.option(
    "--db",
    "db_override",
    type=click.Path(dir_okay=False),
    help="SQLite database file, instead of [edge] db from the configuration.",
)
@click.pass_context
def main(ctx: click.Context, config_path: str | None, db_override: str | None) -> None:
    """Fieldpost edge appliance: run the daemon, manage devices and the buffer database."""
    ctx.obj = Context(config_path, db_override)


# --- run / status --------------------------------------------------------------------------


@main.command()
@click.option("--create", is_flag=True, help="Create the database's folder if it does not exist.")
@pass_ctx
def run(ctx: Context, create: bool) -> None:
    """Run the edge daemon in the foreground: serial links, durable ingest, /health and /metrics.

    Stops cleanly on SIGTERM or Ctrl-C (everything received is committed and ACKed first).
    """
    from edge.daemon import Daemon

    cfg = ctx.config
    if ctx.db_override:
        cfg = config_mod.replace_db(cfg, ctx.db_override)
    logs.setup(cfg.log.level, timestamps=cfg.log.timestamps)
    try:
        config_mod.check_db_folder(cfg, create=create)
        Daemon(cfg).run_forever()
    except FieldpostError as exc:
        raise _fail(exc) from exc


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """Show devices, readings, the sync backlog, quarantine, downlinks and the daemon's health."""
    with ctx.db() as conn:
        now = time.time()
        info = _status(conn, now)
        info["sync"] = _sync_status(conn, now)
    sync = info["sync"]
    if sync is not None:  # the sync area's view of the backlog: counted by priority, with its age
        info["backlog"] = sync["backlog"]
        info["backlog_oldest_at"] = sync["oldest_unsynced_at"]
        info["backlog_age_s"] = sync["backlog_age_s"]
    info["daemon"] = _daemon_health(ctx.config)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    click.echo(f"database     {ctx.db_path}")
    click.echo(f"devices      {info['devices']} registered, {info['devices_seen_1h']} heard in the last hour")
    click.echo(f"readings     {info['readings']} stored, last at {_ts(info['last_reading_at'])}")
    backlog = f"backlog      {info['backlog']} unsynced"
    if sync is not None:
        backlog += " (" + ", ".join(f"{k} {v}" for k, v in sync["backlog_by_priority"].items()) + ")"
    backlog += f", oldest {_ts(info['backlog_oldest_at'])}"
    if info.get("backlog_age_s") is not None:
        backlog += f" ({_age(info['backlog_age_s'])} ago)"
    click.echo(backlog)
    click.echo(f"quarantine   {info['quarantine']} unknown device(s)")
    click.echo("downlinks    " + (", ".join(f"{k} {v}" for k, v in info["downlinks"].items()) or "none"))
    if sync is not None:
        click.echo(f"sync         {_sync_state(sync)}, {sync['bytes_today']} bytes today")
        click.echo(f"  last success {_ts(sync['last_success'])}")
        click.echo(f"  last error   {_error(sync['last_error'], sync['last_error_at'])}")
        for name, sink in sync["sinks"].items() if len(sync["sinks"]) > 1 else ():
            click.echo(
                f"  {name}: last success {_ts(sink['last_success'])}, last error "
                f"{_error(sink['last_error'], sink['last_error_at'])}, {sink['bytes_today']} bytes today"
            )
    daemon = info["daemon"]
    if daemon.get("reachable"):
        click.echo(f"daemon       {daemon.get('status')}, {daemon.get('links_up')} link(s) up")
        for port in daemon.get("ports", []):
            click.echo(f"  {port['path']}: {'up' if port['up'] else 'down'} {port.get('peer') or ''}")
    else:
        click.echo(f"daemon       not reachable ({daemon.get('error')})")


def _status(conn: sqlite3.Connection, now: float) -> dict[str, Any]:
    def one(sql: str, *args: Any) -> Any:
        return conn.execute(sql, args).fetchone()[0]

    return {
        "devices": one("SELECT count(*) FROM devices"),
        "devices_seen_1h": one("SELECT count(*) FROM devices WHERE last_seen >= ?", now - 3600),
        "readings": one("SELECT count(*) FROM readings"),
        "last_reading_at": one("SELECT max(last_seen) FROM devices"),
        "backlog": backlog.unsynced(conn),
        "backlog_oldest_at": backlog.oldest_unsynced_at(conn),
        "quarantine": one("SELECT count(*) FROM quarantine"),
        "downlinks": dict(conn.execute("SELECT status, count(*) FROM downlinks GROUP BY status").fetchall()),
    }


def _sync_status(conn: sqlite3.Connection, now: float) -> dict[str, Any] | None:
    """The cloud sync area's summary (edge.sync.state.sync_status), when that area is installed:
    backlog count, by priority and age, and per sink last success, last error, bytes today."""
    try:
        from edge.sync.state import sync_status
    except ImportError:
        return None
    return sync_status(conn, now)


def _sync_state(sync: dict[str, Any]) -> str:
    if not sync["sinks"]:
        return "never attempted (no cloud configured, or the daemon has not tried yet)"
    return "ok" if sync["healthy"] else "failing (the last error is newer than the last success)"


def _error(message: str | None, at: float | None) -> str:
    return "-" if not message else f"{message} (at {_ts(at)})"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _daemon_health(cfg: config_mod.Config) -> dict[str, Any]:
    if not cfg.http.enabled or cfg.http.port == 0:
        return {"reachable": False, "error": "http status server not configured"}
    url = f"http://{cfg.http.host}:{cfg.http.port}/health"
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return {"reachable": True, **json.loads(resp.read())}
    except urllib.error.HTTPError as exc:
        return {"reachable": True, **json.loads(exc.read() or b"{}")}
    except (OSError, ValueError) as exc:
        return {"reachable": False, "error": str(exc)}


def _ts(value: float | None) -> str:
    return "-" if value is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


# --- devices -------------------------------------------------------------------------------


@main.group()
def devices() -> None:
    """Registered devices (ids and keys), and unknown ones in quarantine."""


@devices.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def devices_list(ctx: Context, as_json: bool) -> None:
    """List registered devices with their last frame counter, last contact and battery."""
    with ctx.db() as conn:
        rows = registry.list_devices(conn)
        reader = ReadingReader(conn)
        try:
            for row in rows:
                row.pop("key")
                row["battery_v"] = reader.battery(row["id"])
        finally:
            reader.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'id':16}  {'name':16} {'role':6} {'codec':8} {'last_fcnt':>9}  {'last seen':23}  battery")
    for r in rows:
        batt = "-" if r["battery_v"] is None else f"{r['battery_v']:.2f} V"
        click.echo(
            f"{r['id']:16}  {r['name'][:16]:16} {r['role']:6} {r['codec'][:8]:8} {r['last_fcnt']:>9}  "
            f"{_ts(r['last_seen']):23}  {batt}"
        )


@devices.command("add")
@click.argument("device_id", required=False)
@click.option(
    "--key", "key_hex", help="The 32-hex-digit key written at provisioning (default: a new random key)."
)
@click.option("--name", default="", help="A name for people.")
@click.option("--codec", default="lpp", show_default=True, help="Payload codec: lpp, raw or a plug-in name.")
@click.option("--board", default="", help="Board profile, e.g. heltec_v2.")
@click.option(
    "--role", type=click.Choice(registry.ROLES), default="node", show_default=True, help="node or bridge."
)
@click.option(
    "--interval",
    "interval_s",
    type=int,
    default=300,
    show_default=True,
    help="Expected seconds between readings.",
)
@click.option(
    "--activation",
    type=click.Choice(["otaa", "abp"]),
    default="otaa",
    show_default=True,
    help="otaa (the node joins with its key) or abp (a session set by hand: --devaddr, --nwk-skey, --app-skey).",
)
@click.option(
    "--devaddr", "devaddr_hex", help="ABP: the node's DevAddr (8 hex digits, NwkID of [lorawan] net_id)."
)
@click.option("--nwk-skey", "nwk_hex", help="ABP: the NwkSKey (32 hex digits), as in the node's config.json.")
@click.option("--app-skey", "app_hex", help="ABP: the AppSKey (32 hex digits), as in the node's config.json.")
@pass_ctx
def devices_add(
    ctx: Context,
    device_id: str | None,
    key_hex: str | None,
    name: str,
    codec: str,
    board: str,
    role: str,
    interval_s: int,
    activation: str,
    devaddr_hex: str | None,
    nwk_hex: str | None,
    app_hex: str | None,
) -> None:
    """Register a device (a new id when DEVICE_ID is omitted) and print its key.

    Adding an id that exists re-provisions it: new key, and its frame counter may start over.
    With --activation abp the device and its ABP session are registered together.
    """
    abp = _abp_session(ctx, activation, devaddr_hex, nwk_hex, app_hex)
    device_id = device_id or registry.new_device_id()
    with ctx.db(must_exist=False) as conn, _abp_option_errors():
        key = registry.parse_key(key_hex) if key_hex else None
        key = registry.add_device(
            conn,
            device_id,
            key=key,
            name=name,
            codec=codec,
            board=board,
            role=role,
            interval_s=interval_s,
            abp=abp,
            actor="cli",
            now=time.time(),
        )
    click.echo(f"device {device_id}\nkey    {key.hex()}")
    if abp is not None:
        click.echo(f"abp    devaddr {abp.devaddr:08x} (session keys stored, not shown)")


_ABP_OPTIONS = {"devaddr": "--devaddr", "nwk_skey": "--nwk-skey", "app_skey": "--app-skey"}


@contextmanager
def _abp_option_errors() -> Iterator[None]:
    """A refused ABP field becomes an error naming the option the operator typed."""
    try:
        yield
    except ValidationError as exc:
        if exc.field in _ABP_OPTIONS:
            raise click.UsageError(f"{_ABP_OPTIONS[exc.field]}: {exc.message}") from exc
        raise


def _abp_session(
    ctx: Context, activation: str, devaddr: str | None, nwk_skey: str | None, app_skey: str | None
) -> registry.AbpSession | None:
    given = {"--devaddr": devaddr, "--nwk-skey": nwk_skey, "--app-skey": app_skey}
    if activation != "abp":
        stray = [opt for opt, value in given.items() if value is not None]
        if stray:
            raise click.UsageError(f"{', '.join(stray)}: only with --activation abp")
        return None
    if devaddr is None or nwk_skey is None or app_skey is None:
        missing = [opt for opt, value in given.items() if value is None]
        raise click.UsageError(f"--activation abp needs {', '.join(missing)}")
    with _abp_option_errors():
        return registry.parse_abp(devaddr, nwk_skey, app_skey, net_id=ctx.config.lorawan.net_id)


@devices.command("remove")
@click.argument("device_id")
@click.option("--purge", is_flag=True, help="Also delete the device's stored readings and downlinks.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def devices_remove(ctx: Context, device_id: str, purge: bool, yes: bool) -> None:
    """Unregister a device. A device with stored readings needs --purge."""
    if not yes:
        click.confirm(f"Remove {device_id}{' and delete its readings' if purge else ''}?", abort=True)
    with ctx.db() as conn:
        deleted = registry.remove_device(conn, device_id, purge=purge, actor="cli", now=time.time())
    click.echo(f"removed {device_id} ({deleted} readings deleted)")


@devices.command("show-key")
@click.argument("device_id")
@pass_ctx
def devices_show_key(ctx: Context, device_id: str) -> None:
    """Print a device's key (32 hex digits), e.g. to provision a replacement module."""
    with ctx.db() as conn:
        dev = registry.get_device(conn, device_id)
        if dev is None:
            raise click.ClickException(f"device_id: no registered device {device_id!r}")
        with transaction(conn):
            registry.audit(
                conn, actor="cli", action="device.show_key", target=device_id, detail={}, now=time.time()
            )
    click.echo(bytes(dev["key"]).hex())


@devices.command("rotate-key")
@click.argument("device_id")
@click.option("--key", "key_hex", help="The new key (default: a new random key).")
@pass_ctx
def devices_rotate_key(ctx: Context, device_id: str, key_hex: str | None) -> None:
    """Give a device a new key (after re-provisioning it); its frame counter may start over."""
    with ctx.db() as conn:
        key = registry.rotate_key(
            conn,
            device_id,
            key=registry.parse_key(key_hex) if key_hex else None,
            actor="cli",
            now=time.time(),
        )
    click.echo(key.hex())


@devices.command("quarantine")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_ctx
def devices_quarantine(ctx: Context, as_json: bool) -> None:
    """List unknown devices that were heard: first and last seen, how often, through which bridge."""
    with ctx.db() as conn:
        rows = registry.list_quarantine(conn)
    for r in rows:
        r["last_frame"] = bytes(r["last_frame"]).hex() if r["last_frame"] is not None else None
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'id':16}  {'first seen':23}  {'last seen':23}  {'count':>6}  bridge")
    for r in rows:
        click.echo(
            f"{r['device_id']:16}  {_ts(r['first_seen']):23}  {_ts(r['last_seen']):23}  {r['count']:>6}  "
            f"{r['last_bridge'] or '-'}"
        )


@devices.command("adopt")
@click.argument("device_id")
@click.option(
    "--key", "key_hex", required=True, help="The key the module was provisioned with (32 hex digits)."
)
@click.option("--name", default="", help="A name for people.")
@click.option("--codec", default="lpp", show_default=True, help="Payload codec: lpp, raw or a plug-in name.")
@pass_ctx
def devices_adopt(ctx: Context, device_id: str, key_hex: str, name: str, codec: str) -> None:
    """Register a device from quarantine with its key; its next uplinks are stored."""
    with ctx.db() as conn:
        registry.adopt(
            conn,
            device_id,
            key=registry.parse_key(key_hex),
            name=name,
            codec=codec,
            actor="cli",
            now=time.time(),
        )
    click.echo(f"adopted {device_id}")


# --- db --------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The SQLite buffer: migrate, check, back up, restore, vacuum, export."""


@db.command("migrate")
@pass_ctx
def db_migrate(ctx: Context) -> None:
    """Create the database if needed and apply the migrations it has not had yet."""
    ctx.db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(ctx.db_path)
    try:
        applied = migrate(conn)
    finally:
        conn.close()
    click.echo("\n".join(f"applied {name}" for name in applied) or "up to date")


@db.command("check")
@click.option("--json", "as_json", is_flag=True, help='{"ok": ..., "problems": [...]} instead of lines.')
@pass_ctx
def db_check(ctx: Context, as_json: bool) -> None:
    """Run SQLite's integrity and foreign-key checks and list pending migrations; exit 1 on a problem."""
    if not ctx.db_path.exists():
        raise click.ClickException(f"no database at {ctx.db_path}")
    conn = connect(ctx.db_path, readonly=True)
    try:
        problems = check_database(conn)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps({"db": str(ctx.db_path), "ok": not problems, "problems": problems}, indent=2))
        sys.exit(1 if problems else 0)
    if problems:
        for p in problems:
            click.echo(p, err=True)
        sys.exit(1)
    click.echo("ok")


def check_database(conn: sqlite3.Connection) -> list[str]:
    try:
        problems = [f"integrity: {r[0]}" for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        problems += [f"foreign key: {tuple(r)}" for r in conn.execute("PRAGMA foreign_key_check")]
    except sqlite3.DatabaseError as exc:
        return [f"integrity: {exc}"]
    try:
        done = set(applied_migrations(conn))
    except sqlite3.OperationalError:
        done = set()
    problems += [f"migration pending: {name}" for name, _ in MIGRATIONS if name not in done]
    return problems


@db.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False))
@pass_ctx
def db_backup(ctx: Context, destination: str) -> None:
    """Copy the database to DESTINATION while the daemon keeps running, checked and recorded.

    The copy is of one instant; it is kept only if SQLite's integrity_check passes and every table
    has the rows the database had at that instant.
    """
    from edge.backup import records
    from edge.backup.copy import make_backup

    with ctx.db() as conn, progress_bar("backing up") as progress:
        result = make_backup(ctx.db_path, Path(destination), progress=progress)
        records.record_ok(conn, "manual", result)
    rows = sum(result.row_counts.values())
    click.echo(f"backed up {ctx.db_path} to {result.path} ({result.bytes} bytes, {rows} rows checked)")


@db.command("backups")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@pass_ctx
def db_backups(ctx: Context, as_json: bool) -> None:
    """List the backups the edge made (scheduled and by hand), newest first."""
    from edge.backup import records

    with ctx.db() as conn:
        found = records.listing(conn)
    if as_json:
        click.echo(json.dumps([b.as_dict() for b in found], indent=2))
        return
    for b in found:
        size = "-" if b.bytes is None else str(b.bytes)
        click.echo(f"{b.id:>5} {_ts(b.started_at)} {b.kind:<7} {b.status:<7} {size:>12} {b.error or b.path}")


@db.command("restore")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Only show what the backup contains; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the contents as JSON.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def db_restore(ctx: Context, source: str, dry_run: bool, as_json: bool, yes: bool) -> None:
    """Replace the database with the backup SOURCE (checked first); the old one is kept aside.

    Refused while the daemon runs. The current database is moved to
    <db>.before-restore-<time>, never deleted.
    """
    from edge.backup.restore import inspect, restore

    try:
        contents = inspect(Path(source))
    except FieldpostError as exc:
        raise _fail(exc) from exc
    if dry_run:
        if as_json:
            click.echo(json.dumps(contents.as_dict(), indent=2))
            return
        click.echo(f"{source}: {contents.bytes} bytes, integrity ok")
        click.echo(f"migrations: {', '.join(contents.migrations) or '-'}")
        if contents.first_reading_at is not None:
            click.echo(f"readings from {_ts(contents.first_reading_at)} to {_ts(contents.last_reading_at)}")
        for table, rows in contents.row_counts.items():
            click.echo(f"  {table:<24} {rows:>10} rows")
        return
    if not yes:
        click.confirm(f"Replace {ctx.db_path} with {source}? (the current one is kept aside)", abort=True)
    try:
        with progress_bar("restoring") as progress:
            aside = restore(ctx.db_path, Path(source), progress=progress)
    except FieldpostError as exc:
        raise _fail(exc) from exc
    click.echo(f"restored {ctx.db_path} from {source} ({sum(contents.row_counts.values())} rows)")
    if aside is not None:
        click.echo(f"the previous database is kept as {aside}")


@db.command("vacuum")
@click.option(
    "--full", is_flag=True, help="Rebuild the whole file (VACUUM; needs free space the size of the file)."
)
@pass_ctx
def db_vacuum(ctx: Context, full: bool) -> None:
    """Hand free pages back to the file system (incremental vacuum, WAL checkpoint)."""
    with ctx.db() as conn:
        before = ctx.db_path.stat().st_size
        if full:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            with progress_bar("freeing pages") as progress:
                reclaim(conn, progress)  # every free page, then the WAL written back and truncated
        after = ctx.db_path.stat().st_size
    click.echo(f"{before} -> {after} bytes")


@db.command("export")
@click.option("--device", "device_id", help="Only this device.")
@click.option("--since", type=float, help="From this Unix time (measured_at).")
@click.option("--until", type=float, help="Up to this Unix time (exclusive).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="csv: one row per value; json: one object per reading per line.",
)
@click.option("--output", type=click.File("w"), default="-", help="File to write (default: standard output).")
@pass_ctx
def db_export(ctx: Context, device_id, since, until, fmt, output) -> None:
    """Export readings (decoded values with units, raw payload, radio metadata), streamed."""
    from edge.export import value_rows
    from edge.store.document import reading_document

    with ctx.db() as conn:
        reader = ReadingReader(conn)
        if device_id:
            found = reader.device_readings(device_id, start=since, end=until)
        else:
            found = reader.all_readings(start=since, end=until)
        # a bar only when the readings go to a file: on the terminal it would tear through them
        to_terminal = output is sys.stdout and sys.stdout.isatty()
        bar = progress_bar("exporting", enabled=not to_terminal)
        progress = bar.__enter__()
        total = _export_total(conn, device_id, since, until) if progress else 0
        writer = None
        if fmt == "csv":
            writer = csv.writer(output)
            writer.writerow(
                [
                    "device",
                    "fcnt",
                    "measured_at",
                    "port",
                    "channel",
                    "name",
                    "value",
                    "unit",
                    "rssi",
                    "snr",
                    "raw",
                    "decode_error",
                    "received_at",
                ]
            )
        try:
            for done, r in enumerate(found, 1):
                if progress is not None and (done % 500 == 0 or done == total):
                    progress(min(done, total), total)
                values, error = reader.decode(r)
                if writer is None:
                    doc = reading_document(
                        r.device_id,
                        r.fcnt,
                        r.received_ms,
                        r.port,
                        values,
                        r.raw,
                        r.rssi,
                        r.snr_q,
                        r.bridge_id,
                        r.age_s,
                    )
                    output.write(json.dumps({**doc, "decode_error": error}, ensure_ascii=False) + "\n")
                    continue
                base = [r.device_id, r.fcnt, r.measured_at, r.port]
                tail = [r.rssi, r.snr, r.raw.hex(), error or "", r.received_at]
                writer.writerows(value_rows(base, values or [], tail))
        finally:
            bar.__exit__(None, None, None)
            reader.close()


def _export_total(
    conn: sqlite3.Connection, device_id: str | None, since: float | None, until: float | None
) -> int:
    """How many readings an export will write (only counted for a progress bar)."""
    from edge.store import numbers, readings

    where, args = ["1"], []
    if device_id:
        number = numbers.number_of(conn, device_id)
        if number is None:
            return 0
        where.append("id BETWEEN ? AND ?")
        args += list(readings.device_bounds(number))
    if since is not None:
        where.append(f"{readings.MEASURED_MS} >= ?")
        args.append(round(since * 1000))
    if until is not None:
        where.append(f"{readings.MEASURED_MS} < ?")
        args.append(round(until * 1000))
    return conn.execute(f"SELECT COUNT(*) FROM readings WHERE {' AND '.join(where)}", args).fetchone()[0]


# --- config ----------------------------------------------------------------------------------


@main.command("config")
@click.option("--example", is_flag=True, help="Print a commented file with every key at its default.")
@click.option("--json", "as_json", is_flag=True, help="Print the values in effect as JSON.")
@pass_ctx
def config_command(ctx: Context, example: bool, as_json: bool) -> None:
    """Check the configuration as `run` does and print the values in effect (file + FIELDPOST_* + defaults).

    Exits non-zero, naming the key and the fix, on any error in any section. Secrets are named, never
    printed. Every key is described in docs/config.md.
    """
    if example:
        click.echo(config_mod.example(), nl=False)
        return
    cfg = ctx.config
    if ctx.db_override:
        cfg = config_mod.replace_db(cfg, ctx.db_override)
    try:
        config_mod.check_db_folder(cfg)
    except FieldpostError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc
    if as_json:
        from edge.config import render

        doc = {
            "path": str(cfg.path) if cfg.path else None,
            "given": sorted(cfg.given),
            "sections": render.values(cfg),
            "secrets": render.secrets_state(cfg),
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
        return
    click.echo(config_mod.effective(cfg), nl=False)


def command_paths(group: click.Group = main, prefix: str = "fieldpost") -> list[tuple[str, click.Command]]:
    """Every command under ``group`` as ("fieldpost devices add", command), groups included."""
    out = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None:
            continue
        path = f"{prefix} {name}"
        out.append((path, cmd))
        if isinstance(cmd, click.Group):
            out.extend(command_paths(cmd, path))
    return out


if __name__ == "__main__":
    main()
