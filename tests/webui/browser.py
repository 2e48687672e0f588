"""Headless Chromium for the panel tests: the Debian browser, never a download, no outside requests."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from urllib.parse import urlparse

from tests.webui.helpers import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def expect(target):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


@contextlib.contextmanager
def launch() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def offline_page(browser, **context_options) -> Iterator:
    """A page in a fresh context. Any request not to 127.0.0.1 is aborted and recorded; on exit the
    test fails if there was one, or if the page raised a JavaScript error."""
    context = browser.new_context(
        **{"viewport": {"width": 1100, "height": 800}, "accept_downloads": True, **context_options}
    )
    external: list[str] = []

    def gate(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        assert external == [], f"requests to outside hosts: {external}"
        assert errors == [], f"JavaScript errors: {errors}"
    finally:
        context.close()


@contextlib.contextmanager
def serve_panel(db_path: str, log_path: str, cwd) -> Iterator[str]:
    """`python -m webui serve` on a free loopback port; yields its base URL."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    log = open(log_path, "w+")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen(
        [sys.executable, "-m", "webui", "serve", "--db", db_path, "--host", "127.0.0.1", "--port", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, Path(log_path).read_text()
            match = re.search(r"panel listening on (http://127\.0\.0\.1:\d+)", Path(log_path).read_text())
            if match:
                break
            assert time.monotonic() < deadline, "panel did not start:\n" + Path(log_path).read_text()
            time.sleep(0.05)
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def log_in(page, base_url: str, username: str = "oscar") -> None:
    page.goto(base_url + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def unlabelled_controls(page) -> list[str]:
    """Visible form controls without a label (accessibility): their outerHTML."""
    return page.eval_on_selector_all(
        "input:not([type=hidden]), select, textarea",
        "els => els.filter(e => e.offsetParent !== null && e.labels.length === 0 && !e.getAttribute('aria-label'))"
        ".map(e => e.outerHTML)",
    )
