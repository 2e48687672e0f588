"""Serial I/O driver for one port: pyserial + one edge-side Session, in one thread.

The building block the link manager uses for each module it finds::

    port = LinkPort("/dev/ttyUSB0", hello={"edge": "0.1.0"}, on_event=handle)
    port.open()                  # opens the port, sends HELLO, starts the reader thread
    ...                          # handle(event) runs on the reader thread:
                                 #   SessionStarted / Received / Acked / Refused / LinkLost
                                 #   from edge.link.session, and PortClosed from here
    port.ack(seq, result)        # after the frame is durable (or ack_later from another thread)
    port.send(FrameType.DOWNLINK, payload, token)   # OverflowError when the window is full
    port.close()

Without ``on_event`` the events go to ``port.events`` (a queue.Queue). All methods are
thread-safe. The reader never raises on bad bytes: every rejected frame is counted in
``port.counters.frame_errors`` under its reason and logged (rate-limited). A serial error
(the device was unplugged) ends the thread with a ``PortClosed`` event; ``close()`` ends
it with ``PortClosed("closed")``. A closed LinkPort is not reopened: make a new one.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Self

import serial

from edge.errors import FrameError, LinkError
from edge.link.frame import FrameType, NackReason
from edge.link.session import Event, LinkCounters, Session

log = logging.getLogger("fieldpost.link")

DEFAULT_BAUDRATE = 921_600
DEFAULT_ACCEPT = (FrameType.UPLINK, FrameType.STATUS, FrameType.LOG)
LOG_LINES_PER_SECOND = 10  # frame rejections logged per port per second; the rest are counted
READ_CHUNK = 4096


@dataclass(frozen=True)
class PortClosed:
    """The port is gone: ``reason`` is "closed" after close(), else the serial error."""

    reason: str


class LinkPort:
    def __init__(
        self,
        path: str,
        *,
        hello: dict[str, Any],
        on_event: Callable[[Event | PortClosed], None] | None = None,
        on_events_done: Callable[[], None] | None = None,
        baudrate: int = DEFAULT_BAUDRATE,
        clock: Callable[[], float] = time.monotonic,
        window: int = 8,
        accept: Iterable[int] = DEFAULT_ACCEPT,
        busy: Callable[[], str | None] = lambda: None,
        serial_factory: Callable[..., serial.Serial] = serial.Serial,
    ):
        self.path = path
        self.baudrate = baudrate
        self.window = window  # frames the peer may have unACKed: the ingest writer's batch bound
        self.events: queue.Queue[Event | PortClosed] = queue.Queue()
        self._on_event = on_event or self.events.put
        # called after the events of one read were delivered: lets the handler hand them on together
        self._on_events_done = on_events_done
        self._serial_factory = serial_factory
        self._lock = threading.RLock()
        self.session = Session(
            hello,
            clock=clock,
            window=window,
            accept=accept,
            busy=busy,
            on_frame_error=self._log_frame_error,
            yields=True,
        )
        self._clock = clock
        self._ser: serial.Serial | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)  # a full pipe already means "wake up"
        self._closing = False
        # ACKs handed in by other threads (the ingest writer), written by the reader thread so
        # that serial writes never hold up the writer; appends and pops of a deque are atomic.
        self._settle_later: deque[tuple[int, bytes]] = deque()
        self._reconnect_due = False
        self._wake_pending = False  # a wake byte is on its way: ack_later need not write another
        self.closed = threading.Event()
        self.close_reason: str | None = None
        self.bytes_rx = 0
        self.bytes_tx = 0
        self._log_window_start = 0.0
        self._log_count = 0
        self._log_suppressed = 0

    # --- public API --------------------------------------------------------------------------

    def open(self) -> Self:
        """Open the serial port, say HELLO and start reading. Raises LinkError if it can't."""
        try:
            # exclusive: an advisory flock, as mpremote and provisioning take too, so the daemon and
            # a provisioning run never both read the same module (each would steal the other's bytes).
            self._ser = self._serial_factory(
                self.path, self.baudrate, timeout=0, write_timeout=2, exclusive=True
            )
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"cannot open {self.path}: {exc}") from exc
        log.info("link.open port=%s baud=%d", self.path, self.baudrate)
        with self._lock:
            # One delimiter first: whatever half frame the module has buffered is ended.
            self._write(b"\x00")
            self.session.connect()
            self._flush()
        self._thread = threading.Thread(target=self._run, name=f"link-{self.path}", daemon=True)
        self._thread.start()
        return self

    @property
    def up(self) -> bool:
        return self.session.up

    @property
    def peer(self) -> dict[str, Any]:
        return self.session.peer

    @property
    def counters(self) -> LinkCounters:
        return self.session.counters

    def can_send(self) -> bool:
        with self._lock:
            return self.session.can_send()

    def send(self, ftype: int, payload: bytes, token: Any = None) -> None:
        with self._lock:
            self.session.send(ftype, payload, token)
            self._flush()
        self._wake()  # the RTO timer may now be due before the reader would look again

    def ack(self, seq: int, result: bytes = b"") -> None:
        with self._lock:
            self.session.ack(seq, result)
            self._flush()

    def ack_later(self, seq: int, result: bytes = b"") -> None:
        """Like ack(), from any thread without waiting: the reader thread writes it at once."""
        self._settle_later.append((seq, result))
        # One wake byte for a burst of ACKs (the writer answers a whole batch at once). The reader
        # clears the flag before it takes the queued ACKs, so an ACK added after that wakes it again.
        if not self._wake_pending:
            self._wake_pending = True
            self._wake()

    def reconnect_later(self) -> None:
        """Start a new session soon, from the reader thread (the peer then resends what it has
        not had ACKed). Calls before it happens make one reconnect, not one each."""
        self._reconnect_due = True
        self._wake()

    def nack(self, seq: int, reason: NackReason, text: str = "") -> None:
        with self._lock:
            self.session.nack(seq, reason, text)
            self._flush()

    def reconnect(self) -> None:
        """Start a new session (HELLO) on the open port."""
        with self._lock:
            self.session.connect()
            self._flush()
        self._wake()

    def close(self) -> None:
        """Stop the reader and close the port. Safe to call more than once, from any thread."""
        self._closing = True
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._finish("closed")
        if self._thread is None or not self._thread.is_alive():
            self._close_wake_pipe()
        # else: close() was called from an event handler on the reader thread, which closes
        # the pipe itself on its way out (_run)

    def wait_up(self, timeout: float) -> bool:
        """Block until a session is up (for tools and tests); False on timeout or close."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.closed.is_set():
            if self.session.up:
                return True
            time.sleep(0.01)
        return self.session.up

    def __enter__(self) -> Self:
        return self.open() if self._ser is None else self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reader thread -----------------------------------------------------------------------

    def _run(self) -> None:
        ser = self._ser
        if ser is None:
            return  # closed before the reader started
        fd = ser.fileno()
        reason = "closed"
        try:
            while not self._closing:
                with self._lock:
                    deadline = self.session.next_deadline()
                timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - self._clock()))
                readable, _, _ = select.select([fd, self._wake_r], [], [], timeout)
                if self._wake_r in readable:
                    os.read(self._wake_r, 512)
                data = b""
                if fd in readable:
                    # Straight from the descriptor (pyserial opened it non-blocking): its read() would
                    # cost an ioctl and a timeout object per call, for the same bytes.
                    try:
                        data = os.read(fd, READ_CHUNK)
                    except BlockingIOError:
                        data = b""
                    else:
                        if not data:  # readable but empty: the device is gone
                            raise serial.SerialException("device disconnected")
                with self._lock:
                    self._settle_queued()
                    events = self.session.receive(data) if data else []
                    events += self.session.poll()
                    self._flush()
                self.bytes_rx += len(data)
                for event in events:
                    self._deliver(event)
                if events and self._on_events_done is not None:
                    self._on_events_done()
        except (serial.SerialException, OSError) as exc:
            if not self._closing:
                reason = f"serial error: {exc}"
                log.warning("link.port_lost port=%s reason=%r", self.path, str(exc))
        except Exception:  # a bug in a callback or the session: report, never hang silently
            log.exception("link.reader_crashed port=%s", self.path)
            reason = "reader crashed"
        self._finish(reason)
        if self._closing:
            self._close_wake_pipe()

    def _deliver(self, event: Event | PortClosed) -> None:
        try:
            self._on_event(event)
        except Exception:
            log.exception("link.event_handler_failed port=%s event=%r", self.path, event)

    def _finish(self, reason: str) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            self.close_reason = reason
            if self._ser is not None:
                try:
                    self._ser.close()
                except (serial.SerialException, OSError):
                    pass
            self.closed.set()
        log.info("link.closed port=%s reason=%r", self.path, reason)
        self._deliver(PortClosed(reason))

    # --- helpers (lock held) -------------------------------------------------------------

    def _settle_queued(self) -> None:
        self._wake_pending = False
        settle = self._settle_later
        while settle:
            seq, result = settle.popleft()
            self.session.ack(seq, result)
        if self._reconnect_due:
            self._reconnect_due = False
            self.session.connect()

    def _flush(self) -> None:
        out = self.session.take_output()
        if out:
            self._write(out)

    def _write(self, data: bytes) -> None:
        if self._ser is None or not self._ser.is_open:
            return
        try:
            self._ser.write(data)
            self.bytes_tx += len(data)
        except serial.SerialTimeoutException:
            log.warning("link.write_timeout port=%s dropped=%d", self.path, len(data))
        except (serial.SerialException, OSError) as exc:
            # the reader sees the same failure and reports PortClosed
            log.warning("link.write_failed port=%s error=%r", self.path, str(exc))

    def _close_wake_pipe(self) -> None:
        with self._lock:
            fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def _wake(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"w")
            except OSError:
                pass

    def _log_frame_error(self, err: FrameError) -> None:
        now = self._clock()
        if now - self._log_window_start >= 1.0:
            if self._log_suppressed:
                log.warning(
                    "link.frames_rejected port=%s suppressed=%d (rate limit)", self.path, self._log_suppressed
                )
            self._log_window_start, self._log_count, self._log_suppressed = now, 0, 0
        if self._log_count < LOG_LINES_PER_SECOND:
            self._log_count += 1
            log.warning("link.frame_rejected port=%s reason=%s detail=%r", self.path, err.reason, err.detail)
        else:
            self._log_suppressed += 1
