"""The panel over HTTPS, served by cheroot itself: Chromium with the self-signed certificate, the
HTTP -> HTTPS redirect, and the login limit counted per real client address."""

from __future__ import annotations

import base64
import hashlib
import http.client
import re
import ssl
import time
import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.webui.browser import CHROMIUM, CHROMIUM_ARGS, expect, log_in, offline_page
from tests.webui.helpers import CSRF_RE, make_user
from webui.app import create_app
from webui.server import Panel
from webui.tls import make_self_signed


@pytest.fixture
def https_panel(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, names=["127.0.0.1"], now=time.time())
    db = str(tmp_path / "f.db")
    app = create_app(
        {
            "DATABASE": db,
            "SECRET_KEY": "s",
            "TLS_CERT": str(cert),
            "TLS_KEY": str(key),
            "LOGIN_RATE_LIMIT": "3 per minute",
        }
    )
    make_user(db, "oscar", "operator")
    panel = Panel(app, "127.0.0.1", 0, tls_cert=str(cert), tls_key=str(key), redirect_port=0).start()
    try:
        yield panel, cert
    finally:
        panel.close()


def _spki_hash(cert_path) -> str:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_chromium_logs_in_over_https_and_http_is_redirected(https_panel):
    from playwright.sync_api import sync_playwright

    panel, cert = https_panel
    base = f"https://127.0.0.1:{panel.port}"
    # Chromium trusts exactly this certificate (by its public key), as an operator who imported it.
    args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={_spki_hash(cert)}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            with offline_page(browser) as page:
                log_in(page, base)
                expect(page).to_have_url(re.compile(r"^https://127\.0\.0\.1:\d+/"))
                page.goto(f"http://127.0.0.1:{panel.redirect_port}/devices?x=1")
                expect(page).to_have_url(f"{base}/devices?x=1")
        finally:
            browser.close()


def _failed_login(port: int, source: str, context: ssl.SSLContext) -> int:
    """One wrong-password login from ``source`` (a loopback address of its own): the HTTP status."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", port, context=context, timeout=10, source_address=(source, 0)
    )
    try:
        conn.request("GET", "/login")
        page = conn.getresponse()
        body = page.read().decode()
        cookie = page.getheader("Set-Cookie", "").split(";")[0]
        form = {"csrf_token": CSRF_RE.search(body).group(1), "username": "nobody", "password": "wrong"}
        conn.request(
            "POST",
            "/login",
            body=urllib.parse.urlencode(form),
            headers={
                "Cookie": cookie,
                "Content-Type": "application/x-www-form-urlencoded",
                "Referer": f"https://127.0.0.1:{port}/login",
            },
        )
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


def test_login_limit_is_per_client_address_over_https(https_panel):
    panel, cert = https_panel
    context = ssl.create_default_context(cafile=str(cert))
    statuses = [_failed_login(panel.port, "127.0.0.2", context) for _ in range(4)]
    assert statuses == [401, 401, 401, 429], statuses  # 401: wrong password; 429: over the limit
    # another client is not held back by the first one's failures
    assert _failed_login(panel.port, "127.0.0.3", context) == 401
    assert _failed_login(panel.port, "127.0.0.2", context) == 429
