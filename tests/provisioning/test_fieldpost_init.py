"""`fieldpost init` into a temporary root: config, database, admin, certificate, udev, systemd."""

from __future__ import annotations

import os
import re
import socket
import ssl
import stat
import threading

import pytest
from click.testing import CliRunner

from edge import config as edge_config
from edge.store import MIGRATIONS, applied_migrations, connect
from provisioning.cli import init_command
from provisioning.udev import RULES_FILE, default_rules

UNIT = """[Unit]
Description=Fieldpost edge daemon
After=network.target

[Service]
ExecStart=/usr/local/bin/fieldpost run
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""


@pytest.fixture
def units_dir(tmp_path):
    d = tmp_path / "units"
    d.mkdir()
    (d / "fieldpost.service").write_text(UNIT)
    return d


def run_init(root, units_dir, *extra, input=None):
    args = [
        "--root",
        str(root),
        "--host",
        "localhost",
        "--host",
        "127.0.0.1",
        "--site",
        "north-well",
        "--units-dir",
        str(units_dir),
        *extra,
    ]
    result = CliRunner().invoke(init_command, args, input=input, catch_exceptions=False)
    return result


def shown_password(output: str) -> str:
    match = re.search(r"write it down\): (\S+)", output)
    assert match, output
    return match.group(1)


def tls_handshake(cert_path, key_path) -> str:
    """Serve a TLS handshake with the panel's certificate; a client trusting only it verifies 'localhost'."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_path, key_path)
    client_ctx = ssl.create_default_context(cafile=str(cert_path))
    a, b = socket.socketpair()
    errors = []

    def serve():
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                s.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:  # reported by the assertion below
            errors.append(exc)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname="localhost") as c:
            data = c.recv(2)
    finally:
        t.join(5)
    assert not errors
    return data.decode()


def test_init_sets_up_a_blank_system(tmp_path, units_dir):
    root = tmp_path / "root"
    result = run_init(root, units_dir, "--generate-password", "--systemd")
    assert result.exit_code == 0, result.output
    password = shown_password(result.output)

    cfg = edge_config.load(root / "etc/fieldpost/fieldpost.toml", env={})
    assert cfg.edge.site == "north-well" and cfg.edge.db == "/var/lib/fieldpost/fieldpost.db"
    assert stat.S_IMODE(os.stat(root / "etc/fieldpost/fieldpost.toml").st_mode) == 0o640

    conn = connect(root / "var/lib/fieldpost/fieldpost.db")
    try:
        assert applied_migrations(conn) == sorted(name for name, _ in MIGRATIONS)
        from webui.accounts import find_user, verify_password

        admin = find_user(conn, "admin")
        assert admin["role"] == "admin" and verify_password(admin["password_hash"], password)
        assert admin["password_hash"].startswith("$argon2id$")
        audit = conn.execute("SELECT actor, action, target FROM audit_log").fetchall()
        assert [tuple(r) for r in audit] == [("cli", "user.create", "admin")]
    finally:
        conn.close()

    tls = root / "etc/fieldpost/tls"
    assert stat.S_IMODE(os.stat(tls / "panel.key").st_mode) == 0o600
    assert tls_handshake(tls / "panel.crt", tls / "panel.key") == "ok"
    assert cfg.section("webui") == {
        "tls": True,
        "tls_cert": "/etc/fieldpost/tls/panel.crt",
        "tls_key": "/etc/fieldpost/tls/panel.key",
    }

    assert (root / "etc/udev/rules.d/99-fieldpost.rules").read_text() == RULES_FILE.read_text()
    unit = root / "etc/systemd/system/fieldpost.service"
    assert unit.read_text() == UNIT
    link = root / "etc/systemd/system/multi-user.target.wants/fieldpost.service"
    assert os.readlink(link) == "/etc/systemd/system/fieldpost.service"


def test_a_site_with_a_newline_is_refused_and_quotes_are_written_as_valid_toml(tmp_path, units_dir):
    root = tmp_path / "root"
    result = run_init(root, units_dir, "--generate-password", "--site", 'north"\n[sync]')
    assert result.exit_code != 0 and "edge.site" in result.output and "control characters" in result.output
    assert not (root / "etc/fieldpost/fieldpost.toml").exists()
    result = run_init(root, units_dir, "--generate-password", "--site", 'north "well" \\ 2')
    assert result.exit_code == 0, result.output
    path = root / "etc/fieldpost/fieldpost.toml"
    assert edge_config.load(path, env={}).edge.site == 'north "well" \\ 2'
    assert "`fieldpost config --example`" in path.read_text()


def test_init_twice_changes_nothing(tmp_path, units_dir):
    root = tmp_path / "root"
    first = run_init(root, units_dir, "--generate-password")
    assert first.exit_code == 0
    files = ["etc/fieldpost/fieldpost.toml", "etc/fieldpost/tls/panel.crt", "etc/fieldpost/tls/panel.key"]
    before = {f: (root / f).read_bytes() for f in files}
    conn = connect(root / "var/lib/fieldpost/fieldpost.db")
    hash_before = conn.execute("SELECT password_hash FROM users").fetchone()[0]
    conn.close()

    second = run_init(root, units_dir, "--generate-password")
    assert second.exit_code == 0, second.output
    assert "write it down" not in second.output  # a password is shown once, at creation
    assert "kept" in second.output and "up to date" in second.output
    assert {f: (root / f).read_bytes() for f in files} == before
    conn = connect(root / "var/lib/fieldpost/fieldpost.db")
    try:
        assert conn.execute("SELECT password_hash FROM users").fetchone()[0] == hash_before
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1
    finally:
        conn.close()


def test_init_asks_for_the_password(tmp_path, units_dir):
    root = tmp_path / "root"
    result = run_init(
        root,
        units_dir,
        "--ask-password",
        "--admin",
        "ops",
        input="correct horse battery\ncorrect horse battery\n",
    )
    assert result.exit_code == 0, result.output
    assert "write it down" not in result.output
    conn = connect(root / "var/lib/fieldpost/fieldpost.db")
    try:
        from webui.accounts import find_user, verify_password

        assert verify_password(find_user(conn, "ops")["password_hash"], "correct horse battery")
    finally:
        conn.close()


def test_too_short_password_is_refused_and_nothing_created(tmp_path, units_dir):
    root = tmp_path / "root"
    result = run_init(root, units_dir, "--ask-password", input="short\nshort\n")
    assert result.exit_code != 0 and "password" in result.output
    conn = connect(root / "var/lib/fieldpost/fieldpost.db")
    try:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    finally:
        conn.close()


def test_systemd_without_units_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_init(tmp_path / "root", empty, "--generate-password", "--systemd")
    assert result.exit_code != 0 and "no unit files" in result.output


def test_udev_rule_file_is_generated_from_known_usb_ids():
    assert RULES_FILE.read_text() == default_rules(), (
        "regenerate: python -c 'from provisioning.udev import RULES_FILE, default_rules; "
        "RULES_FILE.write_text(default_rules())'"
    )
