"""Pure parts of the panel: airtime, times, formatting, the [webui] config, the TLS certificate and relay,
and the command line."""

from __future__ import annotations

import http.client
import json
import ssl
import time

import pytest
from click.testing import CliRunner

from edge.config import from_dict
from edge.errors import ConfigError, ValidationError
from edge.store import connect
from webui import airtime, create_app, formatting
from webui.cli import standalone
from webui.config import parse
from webui.server import Panel
from webui.timeparse import parse_time
from webui.tls import make_self_signed
from webui.tls_relay import loopback_source


def test_time_on_air_matches_the_semtech_calculator():
    # SF7/125 kHz, 10-byte payload: 41.216 ms; SF12/125 kHz, 51 bytes (LDRO on): 2465.792 ms.
    assert airtime.time_on_air_s(10, sf=7) == pytest.approx(0.041216)
    assert airtime.time_on_air_s(51, sf=12) == pytest.approx(2.465792)


def test_duty_cycle_use_of_an_hour():
    use = airtime.duty_cycle_use([11] * 10, window_s=3600, sf=12, bw_hz=125_000)
    per_frame = airtime.time_on_air_s(11 + airtime.FRAME_OVERHEAD, sf=12)
    # 11 bytes of payload in an 18-byte frame envelope: 29 bytes at SF12/125 kHz, 50.25 symbols of 32.768 ms.
    assert per_frame == pytest.approx(1.646592)
    assert use["frames"] == 10 and use["airtime_s"] == pytest.approx(10 * per_frame)
    assert use["fraction"] == pytest.approx(10 * per_frame / 3600)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1767225600", 1767225600.0),
        ("2026-01-01T00:00", 1767225600.0),
        ("2026-01-01T01:00+01:00", 1767225600.0),
        ("2026-01-01T00:00:00Z", 1767225600.0),
    ],
)
def test_parse_time(text, expected):
    assert parse_time("start", text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "1e400", "nan", "-5", "9" * 50, "1900-01-01"])
def test_parse_time_refuses_with_the_field_named(text):
    with pytest.raises(ValidationError) as info:
        parse_time("end", text)
    assert info.value.field == "end"


def test_formatting():
    assert formatting.age(42) == "42 s" and formatting.age(600) == "10 min" and formatting.age(7200) == "2 h"
    assert formatting.age(3 * 86400) == "3 d" and formatting.age(None) == "—"
    assert formatting.size(512) == "512 B" and formatting.size(3 * 1024 * 1024) == "3.0 MiB"
    assert formatting.number(3.70) == "3.7" and formatting.number(None) == "—" and formatting.number(5) == "5"
    assert formatting.utc(0) == "1970-01-01 00:00:00 UTC" and formatting.utc(None) == "never"


def test_webui_config_section(tmp_path):
    settings = parse({"port": 8443, "tls": True, "radio_sf": 9}, db_path="/var/lib/fp.db")
    assert (settings.port, settings.tls_cert, settings.tls_key) == (
        8443,
        "/var/lib/fp.db.panel-cert.pem",
        "/var/lib/fp.db.panel-key.pem",
    )
    assert settings.flask["RADIO_SF"] == 9 and settings.flask["DATABASE"] == "/var/lib/fp.db"
    for bad, key in (
        ({"port": 70000}, "webui.port"),
        ({"radio_sf": "12"}, "webui.radio_sf"),
        ({"colour": "red"}, "webui.colour"),
        ({"enabled": 1}, "webui.enabled"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse(bad, db_path="x.db")


def test_create_app_from_the_edge_config(tmp_path):
    config = from_dict(
        {"edge": {"db": str(tmp_path / "f.db")}, "webui": {"login_max_failures": 2}},
        env={},
    )
    app = create_app(config)
    assert app.config["LOGIN_MAX_FAILURES"] == 2 and app.config["DATABASE"] == str(tmp_path / "f.db")


def test_https_with_a_certificate_made_at_set_up(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, names=["localhost", "127.0.0.1"], now=time.time())
    assert (key.stat().st_mode & 0o777) == 0o600
    app = create_app(
        {
            "DATABASE": str(tmp_path / "f.db"),
            "SECRET_KEY": "s",
            "TLS_CERT": str(cert),
            "TLS_KEY": str(key),
        }
    )
    panel = Panel(app, "127.0.0.1", 0, tls_cert=str(cert), tls_key=str(key)).start()
    try:
        context = ssl.create_default_context(cafile=str(cert))  # verification on: the cert must match
        https = http.client.HTTPSConnection("127.0.0.1", panel.port, context=context, timeout=10)
        https.request("GET", "/setup")
        response = https.getresponse()
        assert response.status == 200 and b"Set up Fieldpost" in response.read()
        cookie = response.getheader("Set-Cookie")
        assert "Secure" in cookie and "HttpOnly" in cookie
        # Keep-alive through the relay: a second request on the same connection.
        https.request("GET", "/static/app.css")
        assert https.getresponse().status == 200
        https.close()
        # An unverified client (no CA) is refused by its own check; plain HTTP gets no page.
        with pytest.raises(ssl.SSLCertVerificationError):
            strict = http.client.HTTPSConnection(
                "127.0.0.1",
                panel.port,
                context=ssl.create_default_context(),
                timeout=10,
            )
            strict.request("GET", "/")
        plain = http.client.HTTPConnection("127.0.0.1", panel.port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            plain.request("GET", "/")
            plain.getresponse()
    finally:
        panel.close()


def test_relay_keeps_lan_clients_apart():
    assert loopback_source("192.168.1.23") == "127.168.1.23"
    assert loopback_source("10.0.0.0") == "127.0.0.1"
    assert loopback_source("fe80::1") == "127.0.0.1"
    assert loopback_source("not an ip") == "127.0.0.1"


def test_cli_users_and_certificate(tmp_path):
    db = str(tmp_path / "f.db")
    runner = CliRunner()
    weak = runner.invoke(
        standalone,
        ["users", "add", "--db", db, "--role", "admin", "--password", "short", "root"],
    )
    assert weak.exit_code != 0 and "password" in weak.output
    ok = runner.invoke(
        standalone,
        [
            "users",
            "add",
            "--db",
            db,
            "--role",
            "admin",
            "--password",
            "long enough pw",
            "root",
        ],
    )
    assert ok.exit_code == 0, ok.output
    listed = runner.invoke(standalone, ["users", "list", "--db", db])
    assert "root" in listed.output and "admin" in listed.output and "active" in listed.output
    as_json = runner.invoke(standalone, ["users", "list", "--db", db, "--json"])
    assert json.loads(as_json.output) == [
        {"username": "root", "role": "admin", "state": "active", "totp": False}
    ]
    reset = runner.invoke(
        standalone,
        ["users", "set-password", "--db", db, "--password", "another long pw", "root"],
    )
    assert reset.exit_code == 0
    actions = [r[0] for r in connect(db).execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["user.create", "user.update"]
    made = runner.invoke(standalone, ["make-cert", "--db", db, "--name", "panel.site.lan"])
    assert made.exit_code == 0 and (tmp_path / "f.db.panel-cert.pem").exists()
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "f.db.panel-cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )
    assert names == ["panel.site.lan"]


def test_every_cli_command_has_help():
    def walk(group):
        for command in group.commands.values():
            yield command
            if hasattr(command, "commands"):
                yield from walk(command)

    for command in walk(standalone):
        assert command.help and len(command.help) > 10, command.name


def test_daemon_keeps_running_when_the_panel_port_is_taken(tmp_path, caplog):
    import socket

    from edge.daemon import Daemon

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = from_dict(
            {
                "edge": {"db": str(tmp_path / "f.db")},
                "link": {"ports": [], "discover": False},
                "http": {"enabled": False},
                "webui": {"host": "127.0.0.1", "port": port},
            },
            env={},
        )
        daemon = Daemon(config, attach_points=("webui.service:attach",)).start()
        try:
            assert daemon.ingest is not None  # the edge core runs; only the panel is missing
            assert "event=panel_not_started" in caplog.text
        finally:
            daemon.stop()
