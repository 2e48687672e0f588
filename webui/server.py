"""Serving the panel with waitress (a production WSGI server, pure Python), optionally behind TLS."""

from __future__ import annotations

import logging
import threading

from flask import Flask
from waitress import create_server, wasyncore
from waitress.server import BaseWSGIServer

log = logging.getLogger("fieldpost.webui")

# Each open page holds one Server-Sent Events stream (a worker thread, up to SSE_MAX_S), so there are
# enough threads for a handful of operators plus their page loads.
DEFAULT_THREADS = 16


def make_server(
    app: Flask,
    host: str = "0.0.0.0",
    port: int = 8080,
    *,
    threads: int = DEFAULT_THREADS,
) -> BaseWSGIServer:
    """A bound waitress server (port 0: any free port; see ``.effective_port``). Call ``.run()``."""
    return create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="fieldpost",
        channel_timeout=120,
        # The app limits bodies itself (MAX_CONTENT_LENGTH); waitress refuses anything absurd before.
        max_request_body_size=1024 * 1024,
        clear_untrusted_proxy_headers=True,
    )


class Panel:
    """The running panel: waitress, and the TLS relay in front of it when HTTPS is on."""

    def __init__(
        self,
        app: Flask,
        host: str,
        port: int,
        *,
        threads: int = DEFAULT_THREADS,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ):
        self.app = app
        self.relay = None
        self.host = host
        if tls_cert:
            from webui.tls import server_context
            from webui.tls_relay import TlsRelay

            self.waitress = make_server(app, "127.0.0.1", 0, threads=threads)
            self.relay = TlsRelay(
                host,
                port,
                self.waitress.effective_port,
                server_context(tls_cert, tls_key),
            )
            self.port = self.relay.port
        else:
            self.waitress = make_server(app, host, port, threads=threads)
            self.port = int(self.waitress.effective_port)
        self.scheme = "https" if self.relay else "http"
        self._threads: list[threading.Thread] = []

    def _run_waitress(self) -> None:
        try:
            self.waitress.run()
        except OSError:
            # close() closes the sockets under the loop's select(); that EBADF is the loop
            # ending as asked, anything else while serving is a real error.
            if not self.app.extensions["fieldpost_stopping"].is_set():
                raise

    def _start_sampler(self) -> None:
        from webui.backlog_history import Sampler

        ext = self.app.extensions
        Sampler(self.app.config["DATABASE"], ext["fieldpost_stopping"], self.app.config["CLOCK"]).start()

    def start(self) -> Panel:
        """Serve in background threads."""
        self._start_sampler()
        targets = [self._run_waitress] + ([self.relay.serve_forever] if self.relay else [])
        for target in targets:
            thread = threading.Thread(target=target, daemon=True, name="fieldpost-panel")
            thread.start()
            self._threads.append(thread)
        log.info("event=panel_listening url=%s://%s:%s", self.scheme, self.host, self.port)
        return self

    def run(self) -> None:
        """Serve in this thread until interrupted."""
        self._start_sampler()
        if self.relay:
            threading.Thread(target=self._run_waitress, daemon=True, name="fieldpost-panel").start()
            self.relay.serve_forever()
        else:
            self._run_waitress()

    def close(self) -> None:
        """Stop accepting, end the live-update streams, let the workers finish, close every socket
        and stop the codec worker."""
        self.app.extensions["fieldpost_stopping"].set()
        if self.relay:
            self.relay.close()
        self.waitress.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self.waitress._map)  # also ends the waitress loop: its map is empty
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
) -> None:
    """Serve until interrupted. With ``tls_cert``/``tls_key`` the panel speaks HTTPS only."""
    panel = Panel(app, host, port, threads=threads, tls_cert=tls_cert, tls_key=tls_key)
    log.info("event=panel_listening url=%s://%s:%s", panel.scheme, host, panel.port)
    try:
        panel.run()
    finally:
        panel.close()
