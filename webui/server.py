"""Serving the panel with cheroot (CherryPy's WSGI server, pure Python), HTTPS included.

cheroot terminates TLS itself, so the app sees each client's own address (REMOTE_ADDR): the
per-address login limit (Flask-Limiter) needs nothing in between. With HTTPS on, an optional
plain-HTTP listener (``[webui] http_redirect_port``) answers every request with a redirect to
the HTTPS address, so a browser typing http:// lands on the panel.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask

log = logging.getLogger("fieldpost.webui")

# Each open page holds one Server-Sent Events stream (a worker thread, up to SSE_MAX_S), so there are
# enough threads for a handful of operators plus their page loads.
DEFAULT_THREADS = 16
SOCKET_TIMEOUT_S = 60  # an idle keep-alive connection is closed after this long
MAX_BODY = 1024 * 1024  # the app limits bodies itself (MAX_CONTENT_LENGTH); this refuses anything absurd


def make_server(
    app: Callable[..., Any],
    host: str = "0.0.0.0",
    port: int = 8080,
    *,
    threads: int = DEFAULT_THREADS,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> wsgi.Server:
    """A bound cheroot server (port 0: any free port; see ``bound_port``). Call ``.serve()``."""
    server = wsgi.Server(
        (host, port),
        app,
        numthreads=threads,
        server_name="fieldpost",
        timeout=SOCKET_TIMEOUT_S,
        shutdown_timeout=5,
    )
    server.max_request_body_size = MAX_BODY
    if tls_cert and tls_key:
        from webui.tls import server_context

        adapter = BuiltinSSLAdapter(tls_cert, tls_key)
        adapter.context = server_context(tls_cert, tls_key)  # TLS >= 1.2, as the panel always had
        server.ssl_adapter = adapter
    server.prepare()  # binds now: a busy port is an OSError here, not in a thread
    return server


def bound_port(server: wsgi.Server) -> int:
    return int(server.bind_addr[1])


def redirect_app(https_port: int) -> Callable[..., Iterable[bytes]]:
    """A WSGI app that sends every request to the same path on ``https://<host>:<https_port>``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "localhost")
        if host.startswith("["):  # [ipv6]:port
            host = host.split("]", 1)[0] + "]"
        else:
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        path = environ.get("PATH_INFO", "/") or "/"
        query = environ.get("QUERY_STRING")
        location = f"https://{host}:{https_port}{path}" + (f"?{query}" if query else "")
        body = b"The panel is served over HTTPS.\n"
        start_response(
            "301 Moved Permanently",
            [("Location", location), ("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


class Panel:
    """The running panel: one cheroot server (HTTP or HTTPS), and the HTTP->HTTPS redirect if asked."""

    def __init__(
        self,
        app: Flask,
        host: str,
        port: int,
        *,
        threads: int = DEFAULT_THREADS,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        redirect_port: int | None = None,
    ):
        self.app = app
        self.host = host
        tls = bool(tls_cert and tls_key)
        self.server = make_server(app, host, port, threads=threads, tls_cert=tls_cert, tls_key=tls_key)
        self.port = bound_port(self.server)
        self.scheme = "https" if tls else "http"
        self.redirect: wsgi.Server | None = None
        self.redirect_port: int | None = None
        if tls and redirect_port is not None:
            try:
                self.redirect = make_server(redirect_app(self.port), host, redirect_port, threads=2)
            except BaseException:
                self.server.stop()
                raise
            self.redirect_port = bound_port(self.redirect)
        self._threads: list[threading.Thread] = []

    def _servers(self) -> list[wsgi.Server]:
        return [self.server] + ([self.redirect] if self.redirect is not None else [])

    def _start_sampler(self) -> None:
        from webui.backlog_history import Sampler

        ext = self.app.extensions
        Sampler(self.app.config["DATABASE"], ext["fieldpost_stopping"], self.app.config["CLOCK"]).start()

    def start(self) -> Panel:
        """Serve in background threads."""
        self._start_sampler()
        for server in self._servers():
            thread = threading.Thread(target=server.serve, daemon=True, name="fieldpost-panel")
            thread.start()
            self._threads.append(thread)
        log.info("event=panel_listening url=%s://%s:%s", self.scheme, self.host, self.port)
        if self.redirect_port is not None:
            log.info("event=panel_redirect port=%s to=%s", self.redirect_port, self.port)
        return self

    def run(self) -> None:
        """Serve in this thread until interrupted."""
        self._start_sampler()
        if self.redirect is not None:
            threading.Thread(target=self.redirect.serve, daemon=True, name="fieldpost-redirect").start()
        self.server.serve()

    def close(self) -> None:
        """Stop accepting, end the live-update streams, let the workers finish, close every socket
        and stop the codec worker."""
        self.app.extensions["fieldpost_stopping"].set()
        for server in self._servers():
            server.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.app.extensions.get("fieldpost_codecs_owned", True):
            self.app.extensions["fieldpost_codecs"].close()  # the plug-in codec worker, if pages started it


def serve(
    app: Flask,
    host: str = "0.0.0.0",
    port: int = 8080,
    *,
    threads: int = DEFAULT_THREADS,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    redirect_port: int | None = None,
) -> None:
    """Serve until interrupted. With ``tls_cert``/``tls_key`` the panel speaks HTTPS only."""
    panel = Panel(
        app, host, port, threads=threads, tls_cert=tls_cert, tls_key=tls_key, redirect_port=redirect_port
    )
    log.info("event=panel_listening url=%s://%s:%s", panel.scheme, host, panel.port)
    try:
        panel.run()
    finally:
        panel.close()
