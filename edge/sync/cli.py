"""``fieldpost sync ...``: show the sync state, run the sync loop on its own, apply retention.

Under ``fieldpost`` the database and the ``[sync]``/``[retention]`` sections come from
the global ``--config``/``--db``; ``--db``/``--config`` here override them (and are
what ``python -m edge.sync`` uses standalone). The daemon (``fieldpost run``) starts
the same SyncService in-process; ``sync run`` runs sync as a separate process.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from typing import TYPE_CHECKING

import click

from edge import config as config_mod
from edge.errors import ConfigError
from edge.store import connect, migrate
from edge.sync.state import sync_status

if TYPE_CHECKING:
    from edge.config.root import Config


def _sources(db_path: str | None, config_path: str | None) -> tuple[str, Config]:
    """(database path, the checked configuration) from our options or fieldpost's."""
    if config_path is not None:
        try:
            cfg = config_mod.load(config_path)
        except ConfigError as exc:
            raise click.ClickException(f"configuration: {exc}") from exc
        db = db_path or cfg.edge.db
    else:
        parent = click.get_current_context().find_root().obj  # edge.cli.Context under `fieldpost`
        found = getattr(parent, "config", None) if parent is not None else None
        cfg = found if found is not None else config_mod.from_dict({})
        db = db_path or (str(parent.db_path) if found is not None else "")
    if not db:
        raise click.ClickException("no database: give --db (or [edge] db in the configuration)")
    return db, cfg


_db_option = click.option("--db", "db_path", type=click.Path(dir_okay=False), help="SQLite buffer database.")
_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file with [sync] and [retention] sections (docs/sync.md).",
)


@click.group("sync")
def sync_group() -> None:
    """Cloud sync: drain the outbox to MQTT or HTTPS, show backlog and errors, retention."""


@sync_group.command("status")
@_db_option
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(db_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Show the backlog (count, age), last success, last error and bytes sent today."""
    db, _ = _sources(db_path, config_path)
    conn = connect(db, readonly=True)
    try:
        status = sync_status(conn, time.time())
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(status, indent=2, sort_keys=True))
        return
    age = status["backlog_age_s"]
    oldest = f", oldest {age:.0f} s old" if age is not None else ""
    click.echo(f"backlog: {status['backlog']} messages{oldest}")
    by = status["backlog_by_priority"]
    click.echo(f"  alarms {by['alarms']}, readings {by['readings']}, bulk {by['bulk']}")
    click.echo(f"last success: {_when(status['last_success'])}")
    click.echo(f"last error: {status['last_error'] or '-'} ({_when(status['last_error_at'])})")
    click.echo(f"bytes today: {status['bytes_today']}")


@sync_group.command("run")
@_db_option
@_config_option
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    help="DEBUG, INFO, WARNING or ERROR.",
)
def run_command(db_path: str | None, config_path: str | None, log_level: str) -> None:
    """Run the sync loop in the foreground until SIGTERM or Ctrl-C."""
    from edge.sync.service import SyncService

    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stdout,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    db, cfg = _sources(db_path, config_path)
    try:
        config = cfg.sync
        conn = connect(db)
        migrate(conn)
        conn.close()
        service = SyncService(db, config, clock=time.time)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    signal.signal(signal.SIGTERM, lambda *_: service.stop(timeout=0))
    try:
        service.run()
    except KeyboardInterrupt:
        pass


@sync_group.command("retention")
@_db_option
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def retention_command(db_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Apply the [retention] policy once now (with the panel's retention settings laid over it):
    age, size (synced first), reclaim space."""
    from edge.store.retention import (
        SETTING_KEYS,
        apply_retention,
        policy_with_settings,
    )
    from edge.sync.panel_settings import read_settings

    db, cfg = _sources(db_path, config_path)
    try:
        policy = cfg.retention.policy()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    conn = connect(db)
    try:
        migrate(conn)
        policy = policy_with_settings(policy, read_settings(conn, SETTING_KEYS))
        report = apply_retention(conn, policy, now=time.time())
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        return
    click.echo(
        f"aged out {report.aged_out}, synced evicted {report.synced_evicted}, unsynced dropped "
        f"{report.unsynced_dropped}; file {report.bytes_before} -> {report.bytes_after} bytes"
    )


def _when(ts: float | None) -> str:
    return "never" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def main() -> None:
    sync_group(prog_name="python -m edge.sync")


if __name__ == "__main__":
    main()
