"""E-mail notifications over STARTTLS and implicit TLS to a real aiosmtpd server with a certificate made
here, with login; and the refusals that keep a password off the wire in clear."""

import ssl

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from edge.errors import DeliveryError, ValidationError
from edge.notify import parse_notify
from edge.notify.config import SmtpSettings
from edge.notify.smtp import SmtpTransport
from edge.notify.transports import trial_message
from tests.rules.test_notify import Mailbox, free_port

USER, PASSWORD = "fieldpost", "s3cret"


class Logins:
    """aiosmtpd authenticator: accepts one user and records what it was given."""

    def __init__(self):
        self.seen = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        self.seen.append((mechanism, ok))
        return AuthResult(success=ok)


@pytest.fixture
def ca(tmp_path):
    authority = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server)
    return server, str(ca_file)


@pytest.fixture
def smtp_server():
    started = []

    def start(**kwargs):
        mailbox, logins = Mailbox(), Logins()
        controller = Controller(
            mailbox, hostname="127.0.0.1", port=free_port(), authenticator=logins, **kwargs
        )
        controller.start()
        started.append(controller)
        return controller.port, mailbox, logins

    yield start
    for controller in started:
        controller.stop()


def email_config(port, ca_file, **extra):
    table = {
        "to": ["ops@site.example"],
        "host": "127.0.0.1",
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "ca_file": ca_file,
        "timeout_s": 5,
        **extra,
    }
    return parse_notify({"email": {key: value for key, value in table.items() if value is not None}})


def test_starttls_is_the_default_and_the_login_happens_inside_tls(ca, smtp_server):
    server_context, ca_file = ca
    port, mailbox, logins = smtp_server(tls_context=server_context, require_starttls=True)
    config = email_config(port, ca_file)
    assert config.smtp.tls == "starttls"
    SmtpTransport(config.smtp).send("ops@site.example", trial_message(1_000_000.0))
    assert logins.seen == [("PLAIN", True)] or logins.seen == [("LOGIN", True)]
    rcpts, mail = mailbox.messages[0]
    assert rcpts == ["ops@site.example"] and mail["Subject"] == "[Fieldpost] test notification"


def test_implicit_tls(ca, smtp_server):
    server_context, ca_file = ca
    # the whole connection is TLS, which aiosmtpd's AUTH check does not see: allow AUTH "without" it
    port, mailbox, logins = smtp_server(ssl_context=server_context, auth_require_tls=False)
    config = email_config(port, ca_file, tls="tls")
    SmtpTransport(config.smtp).send("ops@site.example", trial_message(1_000_000.0))
    assert [ok for _, ok in logins.seen] == [True]
    assert len(mailbox.messages) == 1


def test_a_server_without_starttls_is_an_error_not_a_downgrade(ca, smtp_server):
    _, ca_file = ca
    port, mailbox, logins = smtp_server(auth_require_tls=False)  # offers AUTH in clear, no STARTTLS
    config = email_config(port, ca_file)
    with pytest.raises(DeliveryError, match="STARTTLS|starttls"):
        SmtpTransport(config.smtp).send("ops@site.example", trial_message(1_000_000.0))
    assert logins.seen == [] and mailbox.messages == []


def test_an_unknown_certificate_is_refused(smtp_server, ca):
    server_context, _ = ca
    port, mailbox, _ = smtp_server(tls_context=server_context, require_starttls=True)
    config = email_config(port, None)  # the system's CAs: the test CA is not among them
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        SmtpTransport(config.smtp).send("ops@site.example", trial_message(1_000_000.0))
    assert mailbox.messages == []


def test_a_password_in_clear_to_another_host_is_refused_naming_the_key():
    table = {
        "to": ["a@b.example"],
        "host": "smtp.example.org",
        "tls": "none",
        "password": "x",
        "username": "u",
    }
    with pytest.raises(ValidationError) as err:
        parse_notify({"email": table})
    assert err.value.field == "notify.email.password"
    assert "smtp.example.org" in str(err.value) and "notify.email.tls" in str(err.value)
    # the old spelling means the same
    old_spelling = {key: value for key, value in table.items() if key != "tls"} | {"starttls": False}
    with pytest.raises(ValidationError) as err:
        parse_notify({"email": old_spelling})
    assert err.value.field == "notify.email.password"
    # to a server on this machine it is allowed (a local relay), and without a password too
    assert parse_notify({"email": {**table, "host": "127.0.0.1"}}).smtp.tls == "none"
    no_password = {key: value for key, value in table.items() if key != "password"}
    assert parse_notify({"email": no_password}).smtp.port == 25
    # settings made by hand, not through the config: the transport refuses too
    by_hand = SmtpTransport(SmtpSettings(host="smtp.example.org", tls="none", username="u", password="x"))
    with pytest.raises(DeliveryError, match="notify.email.password") as err:
        by_hand.send("a@b.example", trial_message(1.0))
    assert err.value.permanent


@pytest.mark.parametrize(
    ("email", "field"),
    [
        ({"tls": "ssl"}, "notify.email.tls"),
        ({"tls": "none", "starttls": True}, "notify.email.starttls"),
        ({"ca_file": ""}, "notify.email.ca_file"),
    ],
)
def test_bad_tls_settings_name_the_key(email, field):
    with pytest.raises(ValidationError) as err:
        parse_notify({"email": {"to": ["a@b.example"], "host": "h", **email}})
    assert err.value.field == field
