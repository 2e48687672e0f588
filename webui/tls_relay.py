"""HTTPS in front of waitress, which speaks plain HTTP only.

The relay accepts TLS connections on the LAN address, completes the handshake, and pipes the
decrypted bytes to waitress listening on loopback. One thread per connection does both directions
with select(), so an SSL object is never used by two threads at once.

Each backend connection is made FROM a loopback address derived from the client's address
(192.168.1.23 -> 127.168.1.23; Linux routes all of 127/8 to lo), so the panel's per-address login rate
limit still tells LAN clients apart. Other clients (IPv6, other systems) come from 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import ssl
import sys
import threading

log = logging.getLogger("fieldpost.webui.tls")

HANDSHAKE_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 300.0
CHUNK = 65536


def loopback_source(client_ip: str) -> str:
    """The loopback address a client's relayed connection comes from (see module docstring)."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return "127.0.0.1"
    if address.version != 4 or not sys.platform.startswith("linux"):
        return "127.0.0.1"
    _, b, c, d = address.packed
    if (b, c, d) in ((0, 0, 0), (255, 255, 255)):
        return "127.0.0.1"
    return f"127.{b}.{c}.{d}"


class TlsRelay:
    def __init__(self, host: str, port: int, backend_port: int, context: ssl.SSLContext):
        self.context = context
        self.backend_port = int(backend_port)
        self.listener = socket.create_server((host, port), reuse_port=False, backlog=64)
        self.port = self.listener.getsockname()[1]
        self._closed = threading.Event()

    def serve_forever(self) -> None:
        while not self._closed.is_set():
            try:
                raw, address = self.listener.accept()
            except OSError:
                if self._closed.is_set():
                    return
                raise
            threading.Thread(
                target=self._handle,
                args=(raw, address[0]),
                daemon=True,
                name=f"tls-{address[0]}",
            ).start()

    def close(self) -> None:
        self._closed.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def _handle(self, raw: socket.socket, client_ip: str) -> None:
        raw.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            client = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.info("event=tls_handshake_failed remote=%s error=%s", client_ip, exc)
            raw.close()
            return
        backend = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            try:
                backend.bind((loopback_source(client_ip), 0))
            except OSError:
                backend.bind(("127.0.0.1", 0))
            backend.connect(("127.0.0.1", self.backend_port))
            client.settimeout(IDLE_TIMEOUT_S)
            self._pipe(client, backend)
        except OSError:
            pass
        finally:
            for s in (client, backend):
                try:
                    s.close()
                except OSError:
                    pass

    @staticmethod
    def _pipe(client: ssl.SSLSocket, backend: socket.socket) -> None:
        while True:
            # Decrypted bytes already buffered in the SSL object do not make the socket readable.
            readable: list[socket.socket]
            if client.pending():
                readable = [client]
            else:
                readable, _, _ = select.select([client, backend], [], [], IDLE_TIMEOUT_S)
                if not readable:
                    return
            if client in readable:
                try:
                    data = client.recv(CHUNK)
                except ssl.SSLWantReadError:
                    data = None
                if data == b"":
                    return
                if data:
                    backend.sendall(data)
            if backend in readable:
                data = backend.recv(CHUNK)
                if not data:
                    return
                client.sendall(data)
