"""The CoAP server (aiocoap): ``POST /up`` with a radio frame as application/octet-stream.

The 2.04 Changed (with the radio ACK as its payload) is sent only after the ingest writer
committed the frame. Other answers: 4.15 for another content format, 4.13 for an oversized
frame, 4.00 for a malformed one, 4.01 bad MIC, 4.09 replayed counter, 4.04 unknown device (the
device is quarantined), 4.29 over the per-address rate, 5.03 when the store cannot commit. Every
error answer's payload names what was wrong. aiocoap deduplicates retransmitted confirmable
requests by message id; a new request with the same frame is answered as a duplicate by the writer.
Runs its own asyncio loop on a thread of its own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import aiocoap
import aiocoap.resource as resource
from aiocoap.numbers import ContentFormat
from aiocoap.numbers.codes import Code

from edge.errors import ConfigError
from edge.ingest import Ingestor
from edge.logs import kv
from edge.radio import AckResult
from edge.sources import datagram
from edge.sources.config import DatagramConfig
from edge.sources.counters import Counters
from edge.sources.errors import SourceInputError

log = logging.getLogger("fieldpost.sources.coap")

SOURCE = "coap"
PATH = ("up",)
COMMIT_TIMEOUT_S = 10.0
_CODES = {
    AckResult.STORED: Code.CHANGED,
    AckResult.DUPLICATE: Code.CHANGED,
    AckResult.BAD_MIC: Code.UNAUTHORIZED,
    AckResult.REPLAYED: Code.CONFLICT,
    AckResult.UNKNOWN_DEVICE: Code.NOT_FOUND,
    AckResult.MALFORMED: Code.BAD_REQUEST,
}
_REFUSALS = {
    "malformed": Code.BAD_REQUEST,
    "oversized": Code.REQUEST_ENTITY_TOO_LARGE,
    "rate_limited": Code.TOO_MANY_REQUESTS,
    "busy": Code.SERVICE_UNAVAILABLE,
}


class UplinkResource(resource.Resource):
    def __init__(self, server: CoapServer):
        super().__init__()
        self.server = server

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        return await self.server.handle(request)


class CoapServer:
    def __init__(
        self,
        config: DatagramConfig,
        ingest: Ingestor,
        *,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
        busy: Callable[[], str | None] | None = None,
    ):
        self.config = config
        self.ingest = ingest
        self.counters = counters
        self.gate = datagram.Gate(config, clock=clock, busy=busy)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._context: aiocoap.Context | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> CoapServer:
        self._thread = threading.Thread(target=self._run, name="fieldpost-coap", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if isinstance(self._error, OSError):
            raise ConfigError(
                f"sources.coap.port: cannot listen on {self.config.host}:{self.config.port}: {self._error.strerror}"
            ) from None
        if self._error is not None:
            raise self._error
        log.info("coap listening %s", kv(address=f"{self.config.host}:{self.config.port}"))
        return self

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(), which raises it
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _serve(self) -> None:
        site = resource.Site()
        site.add_resource(PATH, UplinkResource(self))
        self._context = await aiocoap.Context.create_server_context(
            site, bind=(self.config.host, self.config.port), transports=["udp6"]
        )

    async def _shutdown(self) -> None:
        if self._context is not None:
            await self._context.shutdown()

    async def handle(self, request: aiocoap.Message) -> aiocoap.Message:
        self.counters.add(SOURCE, "received")
        sender = _host(request)
        fmt = request.opt.content_format
        if fmt != ContentFormat.OCTETSTREAM:
            named = "none" if fmt is None else f"{int(fmt)}"
            return self._refuse(
                "content_format",
                Code.UNSUPPORTED_CONTENT_FORMAT,
                f"content-format: {named}; expected application/octet-stream (42), a radio frame",
                sender,
            )
        try:
            payload = self.gate.admit(request.payload, sender)
        except SourceInputError as exc:
            return self._refuse(exc.reason, _REFUSALS[exc.reason], f"{exc.field}: {exc.message}", sender)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[bool, bytes | str]] = loop.create_future()

        def settle(value: tuple[bool, bytes | str]) -> None:
            if not answer.done():
                answer.set_result(value)

        self.ingest.submit(
            payload,
            bridge_id=None,
            reply=lambda ack: loop.call_soon_threadsafe(settle, (True, ack)),
            refuse=lambda why: loop.call_soon_threadsafe(settle, (False, why)),
        )
        try:
            committed, value = await asyncio.wait_for(answer, COMMIT_TIMEOUT_S)
        except TimeoutError:
            committed, value = False, "store: no commit in time"
        if not committed:
            return self._refuse("busy", Code.SERVICE_UNAVAILABLE, str(value), sender)
        assert isinstance(value, bytes)  # committed: the writer's ACK
        ack = value
        result = datagram.result_of(ack)
        self.counters.add(SOURCE, result)
        code = _CODES.get(AckResult(ack[0]), Code.BAD_REQUEST) if ack else Code.BAD_REQUEST
        return aiocoap.Message(code=code, payload=ack, content_format=ContentFormat.OCTETSTREAM)

    def _refuse(self, reason: str, code: Code, why: str, sender: str) -> aiocoap.Message:
        self.counters.add(SOURCE, reason)
        log.debug("coap request refused %s", kv(reason=reason, sender=sender, why=why))
        return aiocoap.Message(code=code, payload=why.encode(), content_format=ContentFormat.TEXT)


def _host(request: aiocoap.Message) -> str:
    try:
        return str(request.remote.sockaddr[0]).removeprefix("::ffff:")
    except (AttributeError, IndexError, TypeError):
        return str(request.remote.hostinfo)
