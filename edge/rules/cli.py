"""``fieldpost rules ...``: check the config's rules, list rules and open alarms, acknowledge one.

Registered by edge/cli.py (``edge.rules.cli:rules_group``). The commands use the main
group's context object (config file and database), so ``--config``/``--db`` given to
``fieldpost`` apply here too.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

import click

from edge import alarms
from edge.errors import FieldpostError
from edge.rules.service import load_config
from edge.rules.store import list_rules
from edge.store import transaction

T = TypeVar("T")


def _root(ctx: click.Context):
    obj = ctx.find_root().obj
    if obj is None or not hasattr(obj, "connect"):
        raise click.ClickException("run this as `fieldpost rules ...`")
    return obj


def _read(ctx: click.Context, query: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``query`` on a connection of its own, closed again before the command prints anything."""
    conn = _root(ctx).connect()
    try:
        return query(conn)
    finally:
        conn.close()


@click.group("rules")
def rules_group() -> None:
    """Local rules and alarms: check the config's rules, list rules and open alarms, acknowledge."""


@rules_group.command("check")
@click.pass_context
def check_command(ctx: click.Context) -> None:
    """Validate the config file's [[rules]] and [notify] sections without starting anything."""
    try:
        rules, notify = load_config(_root(ctx).config)
    except FieldpostError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"ok: {len(rules)} rule(s), {len(notify.targets)} notification target(s)")


@rules_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the rules as JSON.")
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """List the rules in the database (from the config file and from the panel)."""
    rules = _read(ctx, list_rules)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "name": r.name,
                        "source": r.source,
                        "enabled": r.enabled,
                        "definition": r.definition,
                    }
                    for r in rules
                ],
                indent=2,
            )
        )
        return
    for r in rules:
        state = "on " if r.enabled else "off"
        click.echo(f"{r.id:4d} {state} {r.source:6s} {r.definition.get('kind', '?'):10s} {r.name}")


@rules_group.command("alarms")
@click.option("--json", "as_json", is_flag=True, help="Print the alarms as JSON.")
@click.pass_context
def alarms_command(ctx: click.Context, as_json: bool) -> None:
    """List the open alarms (raised or acknowledged), most severe first."""
    open_ = _read(ctx, alarms.open_alarms)
    if as_json:
        click.echo(json.dumps([a.as_dict() for a in open_], indent=2))
        return
    if not open_:
        click.echo("no open alarms")
    for a in open_:
        raised = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.raised_at))
        click.echo(f"{a.id:5d} {a.severity:8s} {a.state:12s} {raised}Z {a.device_id or '-':16s} {a.message}")


@rules_group.command("ack")
@click.argument("alarm_id", type=int)
@click.option("--by", required=True, help="Who acknowledges (recorded in the alarm history and audit log).")
@click.pass_context
def ack_command(ctx: click.Context, alarm_id: int, by: str) -> None:
    """Acknowledge an alarm: it stays open until its condition clears, but stops sounding."""
    conn = _root(ctx).connect()
    now = time.time()
    try:
        with transaction(conn):
            done = alarms.acknowledge(conn, alarm_id, by=by, now=now)
            if done:
                conn.execute(
                    "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, 'alarm.acknowledge', ?,"
                    " ?)",
                    (now, by, str(alarm_id), json.dumps({"via": "cli"})),
                )
    except FieldpostError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        conn.close()
    click.echo(f"alarm {alarm_id} acknowledged" if done else f"alarm {alarm_id} was not in state 'raised'")
