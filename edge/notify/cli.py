"""``fieldpost notify ...``: list the notification targets, send them a test notification.

Registered by edge/cli.py (``edge.notify.cli:notify_group``); ``--config`` given to ``fieldpost``
applies here too.
"""

from __future__ import annotations

import json

import click

from edge.errors import FieldpostError, ValidationError
from edge.notify.config import NotifyConfig, parse_notify
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
