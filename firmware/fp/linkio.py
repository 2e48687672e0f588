# Pumps bytes between a UART and a Link (fp/link.py) in one asyncio task.
#
# API (small and stable; the bridge role builds on it):
#   lio = LinkIO(uart, link, on_event, idle_ms=5, on_error=None, beat=None)
#     uart      readinto(buf) -> int|None without blocking (machine.UART with timeout=0,
#               or fp.hal.unix_uart.UnixUART); write(data) -> int|None
#     on_event  called with each event tuple of fp.link (EV_STARTED, EV_RECEIVED, ...)
#     on_error  called with an exception raised by on_event (the pump keeps running);
#               default: sys.print_exception to stderr
#     beat      called once per round of run(): the supervisor's liveness beat
#   asyncio.create_task(lio.run())      runs for ever; sends HELLO first (link.connect())
#   lio.send(ftype, payload, token)     link.send() + write now; OverflowError when full
#   lio.flush()                         write the link's pending output now
#   lio.stop()                          make run() return after its current round
#   lio.counters: rx_bytes, tx_bytes, tx_dropped (bytes thrown away: nobody was reading)
#
# Polling with a short sleep rather than waiting on the UART: the link's timers need
# waking anyway, and a pty with nobody attached reports POLLHUP for ever, which would
# turn an asyncio stream wait into a busy loop. After a full read we go round at once.
import asyncio

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_RX_BUF = const(256)
_MAX_PENDING = const(4096)  # more than this unsent: the peer is not reading, drop it


class LinkIO:
    def __init__(self, uart, link, on_event, idle_ms=5, on_error=None, beat=None):
        self.uart = uart
        self._beat = beat
        self.link = link
        self._on_event = on_event
        self._on_error = on_error
        self._idle_ms = idle_ms
        self._buf = bytearray(_RX_BUF)
        self._pending = b""
        self._running = False
        self.counters = {"rx_bytes": 0, "tx_bytes": 0, "tx_dropped": 0, "event_errors": 0}

    def send(self, ftype, payload, token=None):
        self.link.send(ftype, payload, token)
        self.flush()

    def flush(self):
        out = self.link.take_output()
        if out:
            if self._pending:
                self._pending += out
            else:
                self._pending = out
        if not self._pending:
            return
        n = self.uart.write(self._pending) or 0
        self.counters["tx_bytes"] += n
        self._pending = self._pending[n:] if n < len(self._pending) else b""
        if len(self._pending) > _MAX_PENDING:
            self.counters["tx_dropped"] += len(self._pending)
            self._pending = b""  # the protocol retransmits what matters

    def stop(self):
        self._running = False

    def _dispatch(self, events):
        for ev in events:
            try:
                self._on_event(ev)
            except Exception as e:  # noqa: BLE001 - a handler bug must not stop the link
                self.counters["event_errors"] += 1
                if self._on_error:
                    self._on_error(e)
                else:
                    import sys
                    sys.print_exception(e)

    async def run(self):
        self._running = True
        lk = self.link
        buf = self._buf
        lk.connect()
        self.flush()
        beat = self._beat
        while self._running:
            if beat is not None:
                beat()
            n = self.uart.readinto(buf) or 0
            if n:
                self.counters["rx_bytes"] += n
                self._dispatch(lk.receive(buf[:n]))
            self._dispatch(lk.poll())
            self.flush()
            if n == len(buf):
                wait = 0  # more is probably waiting
            else:
                wait = self._idle_ms
                d = lk.ms_to_deadline()
                if 0 <= d < wait:
                    wait = d
            await asyncio.sleep_ms(wait)
