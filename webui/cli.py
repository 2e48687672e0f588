"""`fieldpost webui ...` (serve the panel, make its certificate) and `fieldpost users ...`.

Registered in edge/cli.py; also runnable alone as `python -m webui`. The database comes from the
parent command's configuration (`fieldpost --db` / [edge] db) or from --db here.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

import click

from edge.errors import FieldpostError, ValidationError
from edge.store import connect, migrate, transaction
from webui import accounts, audit


def _db_path(ctx: click.Context, db: str | None) -> str:
    if db:
        return db
    parent = ctx.find_root().obj
    if parent is not None and hasattr(parent, "db_path"):
        return str(parent.db_path)
    raise click.UsageError("give --db (or run as `fieldpost --db ... webui ...`)")


def _settings(ctx: click.Context, db: str):
    from webui.config import parse

    parent = ctx.find_root().obj
    section = parent.config.section("webui") if parent is not None and hasattr(parent, "config") else {}
    try:
        return parse(section, db_path=db)
    except FieldpostError as exc:
        raise click.ClickException(str(exc)) from exc


def _db_option(help: str = "SQLite database (default: the edge's)."):
    """The --db option every command here takes; without it the parent command's database is used."""
    return click.option("--db", type=click.Path(dir_okay=False), help=help)


def _password_option(help: str):
    """A password option that is asked for (hidden, twice) when not given on the command line."""
    return click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help=help)


@click.group(name="webui")
def webui_group() -> None:
    """The web panel: serve it on its own, make its HTTPS certificate."""


@webui_group.command()
@_db_option()
@click.option("--host", default=None, help="Address to listen on (default [webui] host, 0.0.0.0).")
@click.option(
    "--port",
    type=int,
    default=None,
    help="Port (default [webui] port, 8080; 0: any free port).",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM certificate: serve HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key for --tls-cert.")
@click.pass_context
def serve(
    ctx: click.Context,
    db: str | None,
    host: str | None,
    port: int | None,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Serve the panel with waitress until interrupted (when it runs apart from `fieldpost run`)."""
    from webui.app import create_app
    from webui.server import Panel

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    path = _db_path(ctx, db)
    settings = _settings(ctx, path)
    cert, key = tls_cert or settings.tls_cert, tls_key or settings.tls_key
    if bool(cert) != bool(key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    config = {**settings.flask, "TLS_CERT": cert, "TLS_KEY": key}
    app = create_app(config)
    panel = Panel(
        app,
        host or settings.host,
        settings.port if port is None else port,
        threads=settings.threads,
        tls_cert=cert,
        tls_key=key,
    )
    # Tests and supervisors read this line to learn the port when --port 0 was given.
    click.echo(f"panel listening on {panel.scheme}://{panel.host}:{panel.port}", err=True)
    try:
        panel.run()
    except KeyboardInterrupt:
        pass
    finally:
        panel.close()


@webui_group.command("make-cert")
@_db_option("SQLite database; files go next to it.")
@click.option(
    "--cert",
    type=click.Path(dir_okay=False),
    help="Certificate file (default <db>.panel-cert.pem).",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False),
    help="Key file (default <db>.panel-key.pem).",
)
@click.option(
    "--name",
    "names",
    multiple=True,
    help="Host name or IP the panel is reached by (repeat).",
)
@click.pass_context
def make_cert(
    ctx: click.Context,
    db: str | None,
    cert: str | None,
    key: str | None,
    names: tuple[str, ...],
) -> None:
    """Make a self-signed HTTPS certificate for the panel (then set [webui] tls = true)."""
    from webui.tls import make_self_signed

    if not (cert and key):
        path = _db_path(ctx, db)
        cert, key = cert or path + ".panel-cert.pem", key or path + ".panel-key.pem"
    Path(cert).parent.mkdir(parents=True, exist_ok=True)
    make_self_signed(cert, key, names=list(names) or None, now=time.time())
    click.echo(f"certificate {cert}\nkey         {key}")


@click.group(name="users")
def users_group() -> None:
    """Panel users: add one, list them, reset a password."""


@contextmanager
def _user_db(ctx: click.Context, db: str | None):
    """A migrated connection for one users command, always closed; bad input becomes a one-line error."""
    conn = connect(_db_path(ctx, db))
    migrate(conn)
    try:
        yield conn
    except ValidationError as exc:
        raise click.ClickException(f"{exc.field}: {exc.message}") from exc
    finally:
        conn.close()


@users_group.command("add")
@_db_option()
@click.option(
    "--role",
    type=click.Choice(accounts.ROLES),
    default="viewer",
    show_default=True,
    help="Role.",
)
@_password_option("Password (asked when not given).")
@click.argument("username")
@click.pass_context
def add_user(ctx: click.Context, db: str | None, role: str, password: str, username: str) -> None:
    """Add a panel user (the first admin can also be made in the browser on first run)."""
    with _user_db(ctx, db) as conn, transaction(conn):
        accounts.create_user(conn, username, password, role, now=time.time())
        audit.record(
            conn,
            actor="cli",
            action="user.create",
            target=username,
            detail={"role": role},
            now=time.time(),
        )
    click.echo(f"user {username} ({role}) added")


@users_group.command("list")
@_db_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def list_users(ctx: click.Context, db: str | None, as_json: bool) -> None:
    """List panel users with their role and state."""
    with _user_db(ctx, db) as conn:
        users = [
            {
                "username": user["username"],
                "role": user["role"],
                "state": "disabled" if user["disabled"] else "active",
                "totp": bool(user["totp_secret"]),  # whether, never the secret
            }
            for user in accounts.list_users(conn)
        ]
    if as_json:
        click.echo(json.dumps(users, indent=1))
        return
    for user in users:
        second = " totp" if user["totp"] else ""
        click.echo(f"{user['username']:<32} {user['role']:<9} {user['state']}{second}")


@users_group.command("set-password")
@_db_option()
@_password_option("New password (asked when not given).")
@click.argument("username")
@click.pass_context
def set_password(ctx: click.Context, db: str | None, password: str, username: str) -> None:
    """Reset a user's password; every session of theirs ends."""
    with _user_db(ctx, db) as conn:
        accounts.validate_password(password)
        with transaction(conn):
            user = accounts.find_user(conn, username)
            if user is None:
                raise click.ClickException(f"no user {username!r}")
            accounts.set_password(conn, user["id"], password, now=time.time())
            audit.record(
                conn,
                actor="cli",
                action="user.update",
                target=user["username"],
                detail={"password": "reset"},
                now=time.time(),
            )
    click.echo(f"password of {username} reset")


@users_group.command("reset-totp")
@_db_option()
@click.argument("username")
@click.pass_context
def reset_totp(ctx: click.Context, db: str | None, username: str) -> None:
    """Remove a user's second factor (a lost phone); they log in with the password alone."""
    with _user_db(ctx, db) as conn:
        with transaction(conn):
            user = accounts.find_user(conn, username)
            if user is None:
                raise click.ClickException(f"no user {username!r}")
            conn.execute("UPDATE users SET totp_secret = NULL WHERE id = ?", (user["id"],))
            audit.record(conn, actor="cli", action="user.totp_off", target=user["username"], now=time.time())
    click.echo(f"second factor of {username} removed")


@click.group(name="panel", context_settings={"help_option_names": ["-h", "--help"]})
def standalone() -> None:
    """Fieldpost web panel (standalone entry: python -m webui)."""


standalone.add_command(serve)
standalone.add_command(make_cert)
standalone.add_command(users_group)
