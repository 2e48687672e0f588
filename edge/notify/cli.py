"""``fieldpost notify ...``: the targets, a test notification, the queue and its dead letters.

Registered by edge/cli.py (``edge.notify.cli:notify_group``); ``--config`` given to ``fieldpost``
applies here too.
"""

from __future__ import annotations

import json
import time

import click

from edge.errors import FieldpostError, ValidationError
from edge.notify.config import NotifyConfig, parse_notify
from edge.notify.queue import queued, retry_dead_letters
from edge.notify.trial import describe_targets, send_trial


def _config(ctx: click.Context) -> NotifyConfig:
    root = ctx.find_root().obj
    if root is None or not hasattr(root, "config"):
        raise click.ClickException("run this as `fieldpost notify ...`")
    try:
        return parse_notify(root.config.extra.get("notify"))
    except ValidationError as exc:
        raise click.ClickException(f"configuration: {exc}") from exc


@click.group("notify")
def notify_group() -> None:
    """Alarm notifications: list the targets of [notify], send them a test notification."""


@notify_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the targets as JSON.")
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """The notification targets (webhook, email, apprise) and what each receives."""
    targets = describe_targets(_config(ctx))
    if as_json:
        click.echo(json.dumps(targets, indent=2))
        return
    if not targets:
        click.echo("no notification targets ([notify] in the configuration)")
    for t in targets:
        name = t["target"] + (f" ({t['service']})" if "service" in t else "")
        rules = ",".join(t["rules"]) or "*"
        click.echo(
            f"{t['channel']:<8} {name:<40} >= {t['min_severity']:<8} {','.join(t['states'])}  rules {rules}"
        )


@notify_group.command("test")
@click.option(
    "--target", "only", help="Only this target (a webhook URL, an e-mail address, an apprise name)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcomes as JSON.")
@click.pass_context
def test_command(ctx: click.Context, only: str | None, as_json: bool) -> None:
    """Send a test notification to every target now; exit 1 if any did not take it."""
    config = _config(ctx)
    try:
        outcomes = send_trial(config, only=only)
    except FieldpostError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([o.as_dict() for o in outcomes], indent=2))
    else:
        if not outcomes:
            click.echo("no notification targets ([notify] in the configuration)")
        for o in outcomes:
            click.echo(
                f"{'ok' if o.ok else 'FAILED':<6} {o.channel:<8} {o.target}"
                + (f": {o.error}" if o.error else "")
            )
    if any(not o.ok for o in outcomes):
        ctx.exit(1)


@notify_group.command("queue")
@click.option(
    "--status",
    type=click.Choice(["pending", "sent", "failed"]),
    help="Only these (failed: the dead letters).",
)
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="At most this many."
)
@click.option("--json", "as_json", is_flag=True, help="Print the notifications as JSON.")
@click.pass_context
def queue_command(ctx: click.Context, status: str | None, limit: int, as_json: bool) -> None:
    """The notification queue, newest first: what was sent, what waits for a retry, the dead letters."""
    conn = ctx.find_root().obj.connect()
    try:
        rows = queued(conn, status=status, limit=limit)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        error = f"  {r['last_error']}" if r["last_error"] and r["status"] != "sent" else ""
        click.echo(
            f"{r['id']:>6} {r['status']:<7} {r['attempts']:>3}x {r['channel']:<8} {r['target']:<30} "
            f"{r['severity']:<8} {r['rule']}{error}"
        )


@notify_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.pass_context
def retry_command(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Queue dead letters again (the given IDS, or all of them), to be sent on the notifier's next round."""
    conn = ctx.find_root().obj.connect()
    try:
        count = retry_dead_letters(conn, time.time(), list(ids) or None)
    finally:
        conn.close()
    click.echo(f"{count} notification(s) queued again")
