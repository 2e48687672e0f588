"""A loopback TCP forwarder that stands for the site's internet connection: open or cut."""

import select
import socket
import socketserver
import threading


class InternetGate:
    """While open, connections to ``port`` are forwarded to ``target_port``; while cut, refused."""

    def __init__(self, port: int, target_port: int):
        self.port = port
        self.target_port = target_port
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        target = self.target_port

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self):
                with socket.create_connection(("127.0.0.1", target)) as upstream:
                    ends = [self.request, upstream]
                    while True:
                        ready, _, _ = select.select(ends, [], [], 0.2)
                        if getattr(self.server, "cut", False):
                            return
                        for end in ready:
                            data = end.recv(65536)
                            if not data:
                                return
                            (upstream if end is self.request else self.request).sendall(data)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Pipe, bind_and_activate=False)
        server.allow_reuse_address = True
        server.daemon_threads = True
        server.server_bind()
        server.server_activate()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def cut(self) -> None:
        if self._server is None:
            return
        self._server.cut = True  # open pipes notice within 0.2 s and close
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = None
