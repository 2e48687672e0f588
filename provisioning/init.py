"""`fieldpost init`: turn a blank Pi into an appliance. Every step is safe to re-run.

Paths are absolute inside the target system and placed under ``root`` ("/" on the
Pi itself; a directory for tests and image builds), so nothing outside it is touched.

``system_only`` is what the Debian package's postinst runs (the package ships the
config, the unit and the udev rule itself): the database, the panel certificate, the
``fieldpost`` account, owners and modes. The full run does the same steps, so a Pi set
up with `sudo fieldpost init` and one with the package end up alike.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from edge import config as edge_config
from edge.assets import asset_dir
from edge.errors import ConfigError
from edge.registry import audit
from edge.store import connect, migrate, transaction
from provisioning import certs, ownership, systemd, udev
from provisioning.account import ensure_account

DEFAULT_CONFIG = Path("/etc/fieldpost/fieldpost.toml")
DEFAULT_DB = Path("/var/lib/fieldpost/fieldpost.db")
DEFAULT_TLS_DIR = Path("/etc/fieldpost/tls")
UNITS_DIR = asset_dir("packaging")
UDEV_DIR = Path("etc/udev/rules.d")


@dataclass
class InitOptions:
    root: Path = Path("/")
    config: Path = DEFAULT_CONFIG
    db: Path = DEFAULT_DB
    tls_dir: Path = DEFAULT_TLS_DIR
    site: str = "site"
    admin: str = "admin"
    password: str | None = None  # None: generate one (shown once)
    hosts: list[str] = field(default_factory=list)  # names/addresses for the panel certificate
    systemd: bool = False
    units_dir: Path = UNITS_DIR
    system_only: bool = False  # the postinst's part: no config file, admin, udev rule or units
    # Filled in from the config file once it is written or found.
    tls: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None


@dataclass
class InitReport:
    steps: list[tuple[str, str]] = field(default_factory=list)  # (step, what happened)
    created: set[Path] = field(default_factory=set)  # paths in the target system this run made
    generated_password: str | None = None
    units: list[str] = field(default_factory=list)

    def note(self, step: str, outcome: str) -> None:
        self.steps.append((step, outcome))


def under(root: Path, path: Path) -> Path:
    """``path`` (absolute in the target system) placed under ``root``."""
    return Path(root) / Path(path).relative_to("/") if Path(path).is_absolute() else Path(root) / path


def default_hosts() -> list[str]:
    name = socket.gethostname() or "fieldpost"
    return [name, f"{name}.local", "localhost", "127.0.0.1"]


def render_config(opts: InitOptions) -> str:
    """The config file init writes (TOML by tomli-w), checked by the schema before it is written."""
    cert, key = opts.tls_dir / "panel.crt", opts.tls_dir / "panel.key"
    data = {
        "edge": {"db": str(opts.db), "site": opts.site},
        "webui": {"tls": True, "tls_cert": str(cert), "tls_key": str(key)},
    }
    edge_config.from_dict(data, env={})  # a bad --site (a newline...) is refused, naming edge.site
    return (
        "# Fieldpost appliance configuration, written by `fieldpost init`.\n"
        "# Every key has a default; `fieldpost config --example` prints them all (docs/config.md).\n\n"
        + edge_config.dumps(data)
    )


def _as_os_error(exc: Exception) -> OSError:
    if isinstance(exc, OSError):
        return exc
    return OSError(errno.EIO, str(exc))  # sqlite3's "unable to open database file" and kin


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write atomically, with ``mode`` from the start (a key is never world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_config(opts: InitOptions, report: InitReport) -> None:
    """Write the config unless one exists; then follow what it says (db, TLS paths) for the rest."""
    path = under(opts.root, opts.config)
    if path.exists():
        report.note("config", f"kept {opts.config}")
    else:
        try:
            _write_private(path, render_config(opts).encode(), 0o640)
        except OSError as exc:
            raise ownership.fs_error(opts.config, exc, "write") from None
        report.note("config", f"wrote {opts.config}")
    read_config(opts)


def read_config(opts: InitOptions) -> None:
    """Follow the config (db, TLS paths); it must load: a bad hand edit fails now, not at boot."""
    path = under(opts.root, opts.config)
    # no file (the package's conffile deleted): the defaults, never the build machine's own /etc
    cfg = edge_config.load(path, env={}) if path.exists() else edge_config.from_dict({}, env={})
    from webui.config import from_edge_config

    panel = from_edge_config(cfg)  # and the panel's section must satisfy the panel
    opts.db = Path(cfg.edge.db)
    opts.tls = panel.enabled and bool(panel.tls_cert)
    opts.tls_cert = Path(cfg.webui.tls_cert or opts.tls_dir / "panel.crt")
    opts.tls_key = Path(cfg.webui.tls_key or opts.tls_dir / "panel.key")


def migrate_database(opts: InitOptions, report: InitReport) -> None:
    path = under(opts.root, opts.db)
    report.created |= {p for p in (opts.db.parent, opts.db) if not under(opts.root, p).exists()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path)
    except (OSError, sqlite3.Error) as exc:
        raise ownership.fs_error(opts.db, _as_os_error(exc), "create or open") from None
    try:
        applied = migrate(conn)
    finally:
        conn.close()
    report.note("database", f"applied {len(applied)} migrations" if applied else "up to date")


def setup_database(opts: InitOptions, report: InitReport, *, now: float) -> None:
    # The panel owns users and password hashing (argon2id); share its helpers so its login accepts ours.
    from webui import accounts

    migrate_database(opts, report)
    conn = connect(under(opts.root, opts.db))
    try:
        if accounts.find_user(conn, opts.admin) is not None:
            report.note("admin", f"user {opts.admin!r} exists, password unchanged")
            return
        password = opts.password
        if password is None:
            password = secrets.token_urlsafe(15)  # 20 characters, ~120 bits
            report.generated_password = password
        with transaction(conn):
            accounts.create_user(conn, opts.admin, password, "admin", now=now)
            audit(
                conn,
                actor="cli",
                action="user.create",
                target=opts.admin,
                detail={"role": "admin", "via": "init"},
                now=now,
            )
        report.note("admin", f"created user {opts.admin!r}")
    finally:
        conn.close()


def make_certificate(opts: InitOptions, report: InitReport, *, now: float) -> None:
    # The panel's own certificate maker (webui/tls.py), so `fieldpost webui make-cert` and init agree.
    from webui.tls import make_self_signed

    if not opts.tls:
        report.note("certificate", "none needed (the panel is off or serves plain HTTP)")
        return

    cert_path = under(opts.root, opts.tls_cert or opts.tls_dir / "panel.crt")
    key_path = under(opts.root, opts.tls_key or opts.tls_dir / "panel.key")
    hosts = opts.hosts or default_hosts()
    if (
        cert_path.exists()
        and key_path.exists()
        and certs.certificate_covers(cert_path.read_bytes(), hosts, now=now)
    ):
        report.note("certificate", "kept (valid, covers every host)")
        return
    report.created |= {Path("/") / p.relative_to(opts.root) for p in (cert_path, key_path, cert_path.parent)}
    try:
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        make_self_signed(cert_path, key_path, names=hosts, now=now)
    except OSError as exc:
        raise ownership.fs_error(Path("/") / cert_path.relative_to(opts.root), exc, "write") from None
    report.note("certificate", f"self-signed for {', '.join(hosts)}")


def install_udev_rule(opts: InitOptions, report: InitReport) -> None:
    path = under(opts.root, UDEV_DIR / udev.RULES_NAME)
    text = udev.default_rules()
    if path.exists() and path.read_text() == text:
        report.note("udev", "rule up to date")
        return
    _write_private(path, text.encode(), 0o644)
    report.note("udev", f"installed /{UDEV_DIR / udev.RULES_NAME}")


def set_up_account(opts: InitOptions, report: InitReport) -> None:
    """The ``fieldpost`` user and groups, then owners and modes the service needs (provisioning.ownership)."""
    root = Path(opts.root)
    if not (root / "etc/passwd").exists():
        report.note("account", f"skipped: no etc/passwd under {root} (not a system root)")
        return
    notes: list[str] = []
    account = ensure_account(root, notes.append)
    for text in notes:
        report.note("account", text)
    if not notes:
        report.note("account", f"user fieldpost exists (groups {', '.join(account.groups) or 'none'})")
    rules = ownership.wanted(config=opts.config, db=opts.db, tls_cert=opts.tls_cert, tls_key=opts.tls_key)
    changes: list[str] = []
    extra = ownership.state_dir_contents(root, opts.db)
    ownership.apply(root, rules + extra, changes.append, fresh=frozenset(report.created))
    for text in changes:
        report.note("files", text)
    if not changes:
        report.note("files", "owners and modes already right")


def run_init(opts: InitOptions, *, now: float, run: systemd.Runner | None = None) -> InitReport:
    if not opts.config.is_absolute() or not opts.db.is_absolute() or not opts.tls_dir.is_absolute():
        raise ConfigError("init: --config, --db and the TLS directory must be absolute paths")
    report = InitReport()
    if opts.system_only:
        read_config(opts)
        migrate_database(opts, report)
        make_certificate(opts, report, now=now)
        set_up_account(opts, report)
        return report
    write_config(opts, report)
    setup_database(opts, report, now=now)
    make_certificate(opts, report, now=now)
    install_udev_rule(opts, report)
    set_up_account(opts, report)
    if opts.systemd:
        report.units = systemd.install_units(opts.units_dir, opts.root, run=run)
        report.note("systemd", f"installed and enabled {', '.join(report.units)}")
    return report
