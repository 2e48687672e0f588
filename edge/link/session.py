"""Reliable-delivery state machine of the serial link, edge side, without I/O.

Feed it bytes (``receive``) and the passage of time (``poll``); take the bytes it
wants written (``take_output``) and the events it produced. The clock and the
random source are passed in, so tests drive time by hand. The rules are those
of docs/protocol.md section 3 and 4.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from edge.errors import FrameError
from edge.link.frame import Deframer, Frame, FrameType, NackReason, encode, is_sequenced

RTO_INITIAL = 0.3
RTO_MAX = 3.0
EXPIRIES_BEFORE_DOWN = 10
BUSY_BACKOFF_INITIAL = 1.0
BUSY_BACKOFF_MAX = 30.0
HELLO_RETRY = 1.0
GAP_NACK_INTERVAL = 0.1
DUPLICATE_SPAN = 64
MAX_WINDOW = 32
PROD_INTERVAL = 0.05  # resend of an ACK-less oldest frame, see _on_ack
PROD_MAX = 4
_HELLO, _HELLO_ACK, _ACK, _NACK = (
    int(t) for t in (FrameType.HELLO, FrameType.HELLO_ACK, FrameType.ACK, FrameType.NACK)
)


def seq_distance(a: int, b: int) -> int:
    """Signed distance a - b in 16-bit sequence space."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


# --- events handed to the application -------------------------------------------------


@dataclass(frozen=True)
class SessionStarted:
    peer: dict[str, Any]


@dataclass(frozen=True)
class Received:
    """A sequenced frame, delivered once and in order; settle it with ack() or nack()."""

    frame: Frame


@dataclass(frozen=True)
class Acked:
    token: Any
    result: bytes


@dataclass(frozen=True)
class Refused:
    token: Any
    reason: NackReason
    text: str


@dataclass(frozen=True)
class LinkLost:
    reason: str


Event = SessionStarted | Received | Acked | Refused | LinkLost


@dataclass
class _Outgoing:
    type: int
    payload: bytes
    token: Any
    seq: int = 0
    numbered: bool = False  # has a seq in the current session


@dataclass
class LinkCounters:
    frames_rx: int = 0
    frames_tx: int = 0
    retransmits: int = 0
    duplicates_rx: int = 0
    gaps_rx: int = 0
    acks_rx: int = 0
    nacks_rx: dict[str, int] = field(default_factory=dict)
    nacks_tx: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    link_lost: int = 0
    frame_errors: dict[str, int] = field(default_factory=dict)


class Session:
    """One side of one serial link.

    ``hello`` is the JSON object this side announces (its ``isn`` and ``win`` are
    filled in here). ``accept`` lists the sequenced frame types this side takes;
    others are refused with NACK UNSUPPORTED. ``busy()`` is asked before a frame is
    delivered: while it returns a reason, frames are refused with NACK BUSY and the
    peer keeps them.
    """

    def __init__(
        self,
        hello: dict[str, Any],
        *,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        window: int = 8,
        accept: Iterable[int] = (),
        busy: Callable[[], str | None] = lambda: None,
        on_frame_error: Callable[[FrameError], None] | None = None,
        yields: bool = True,
    ):
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"window {window} out of range 1..{MAX_WINDOW}")
        self._hello = dict(hello)
        self._clock = clock
        self._rng = rng or random.Random()
        self._my_window = window
        self._accept = frozenset(accept)
        self._busy = busy
        self._on_frame_error = on_frame_error
        # When both sides send HELLO at once, the side that yields (the edge) answers the
        # peer's HELLO and drops its own; the other (the module) ignores the peer's HELLO
        # while it waits for the answer to its own. Without a winner the two would settle
        # on crossed sequence numbers.
        self._yields = yields
        self._hello_isn = -1
        self.counters = LinkCounters()
        self._deframer = Deframer(on_error=self._frame_error)
        self._out = bytearray()
        self._events: list[Event] = []

        self.up = False
        self.peer: dict[str, Any] = {}
        self._hello_due: float | None = None  # when to (re)send our HELLO; None: not connecting
        self._window = window
        # sender
        self._next_seq = 0
        self._unacked: deque[_Outgoing] = deque()  # in seq order; the first len(_sent) are on the wire
        self._in_flight = 0
        self._rto = RTO_INITIAL
        self._rto_due: float | None = None
        self._expiries = 0
        self._busy_backoff = BUSY_BACKOFF_INITIAL
        self._busy_until: float | None = None
        self._last_gap_retransmit = -1.0
        self._prod_seq = -1  # the oldest frame we are prodding for its lost ACK
        self._prod_count = 0
        self._prod_due: float | None = None
        self._last_gap_target = -1
        # receiver
        self._expected = 0
        self._unsettled: set[int] = set()
        self._replies: OrderedDict[int, bytes] = OrderedDict()  # seq -> ACK/NACK bytes sent
        self._last_gap_nack = -1.0
        self._last_gap_expected = -1
        self._gap_highest = 0  # furthest out-of-order frame (distance past expected) since that GAP
        self._version_nack_at = -10.0

    # --- application API -----------------------------------------------------------------

    def connect(self) -> None:
        """Start a new session: send HELLO now and every second until HELLO_ACK."""
        self.up = False
        # Frames delivered in the old session but not yet settled are not ACKed any more:
        # once the peer has our HELLO it renumbers, and a late ACK could match a new frame.
        # The peer resends them in the new session (the application dedupes by message id).
        self._unsettled.clear()
        self._hello_due = self._clock()
        self._poll_hello()

    def can_send(self) -> bool:
        return len(self._unacked) < self._window

    def send(self, ftype: int, payload: bytes, token: Any = None) -> None:
        """Queue a sequenced frame. Raises OverflowError when the window is full."""
        if not is_sequenced(ftype):
            raise ValueError(f"frame type 0x{ftype:02x} is not a sequenced type")
        if not self.can_send():
            raise OverflowError("link window full")
        self._unacked.append(_Outgoing(ftype, bytes(payload), token))
        self._pump()

    @property
    def unacked(self) -> int:
        return len(self._unacked)

    def ack(self, seq: int, result: bytes = b"") -> None:
        """The application made frame ``seq`` durable: acknowledge it."""
        self._settle(seq, encode(_ACK, seq, result))

    def nack(self, seq: int, reason: NackReason, text: str = "") -> None:
        """The application refuses frame ``seq`` (INVALID or UNSUPPORTED)."""
        self._count_nack_tx(reason)
        self._settle(seq, encode(FrameType.NACK, seq, bytes([reason]) + text.encode()[:200]))

    def receive(self, data: bytes) -> list[Event]:
        for frame in self._deframer.feed(data):
            self.counters.frames_rx += 1
            self._on_frame(frame)
        self._pump()
        return self._take_events()

    def poll(self) -> list[Event]:
        """Run the timers. Call at least every ``next_deadline()``."""
        self._poll_hello()
        now = self._clock()
        if self._busy_until is not None and now >= self._busy_until:
            self._busy_until = None
            self._in_flight = 0  # go back to the refused frame
            self._rto_due = None  # a fresh RTO from the resend, not an expiry for the pause
        if self._rto_due is not None and now >= self._rto_due and self._busy_until is None:
            self._expire()
        if self._prod_due is not None and now >= self._prod_due:
            self._prod_due = None
            if self._in_flight and self._unacked[0].seq == self._prod_seq:  # still no ACK for it
                self._prod()
        self._pump()
        return self._take_events()

    def next_deadline(self) -> float | None:
        times = [
            t for t in (self._hello_due, self._rto_due, self._busy_until, self._prod_due) if t is not None
        ]
        return min(times) if times else None

    def take_output(self) -> bytes:
        """The bytes to write now. A batch starts with a delimiter (an empty frame, ignored by
        the peer): if the delimiter after our previous batch was corrupted on the line, the
        peer's buffer holds a dangling partial frame that would otherwise swallow the first
        frame of this batch, which after a stall is the very retransmission meant to recover."""
        if not self._out:
            return b""
        out, self._out = b"\x00" + bytes(self._out), bytearray()
        return out

    # --- internals -----------------------------------------------------------------------

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def _write(self, data: bytes) -> None:
        self.counters.frames_tx += 1
        self._out += data

    def _frame_error(self, err: FrameError) -> None:
        self.counters.frame_errors[err.reason] = self.counters.frame_errors.get(err.reason, 0) + 1
        if err.reason == "version" and self._clock() - self._version_nack_at >= 1.0:
            self._version_nack_at = self._clock()
            self._write(encode(FrameType.NACK, 0, bytes([NackReason.VERSION, 1])))
        if self._on_frame_error is not None:
            self._on_frame_error(err)

    def _hello_payload(self, isn: int, answering: int | None = None) -> bytes:
        body = dict(self._hello, proto=1, isn=isn, win=self._my_window)
        if answering is not None:
            body["re"] = answering
        return json.dumps(body, separators=(",", ":")).encode()

    def _poll_hello(self) -> None:
        if self._hello_due is not None and self._clock() >= self._hello_due:
            self._hello_isn = self._rng.randrange(0x10000)
            self._write(encode(FrameType.HELLO, 0, self._hello_payload(self._hello_isn)))
            self._hello_due = self._clock() + HELLO_RETRY

    def _start(self, my_isn: int, peer: dict[str, Any]) -> None:
        # _parse_hello has checked both numbers
        peer_isn = int(peer["isn"]) & 0xFFFF
        peer_win = int(peer.get("win", 8))
        self.up = True
        self.peer = peer
        self.counters.sessions += 1
        self._hello_due = None
        self._window = max(1, min(self._my_window, peer_win, MAX_WINDOW))
        self._next_seq = my_isn
        for item in self._unacked:  # renumbered and resent in the new session
            item.numbered = False
        self._in_flight = 0
        self._rto, self._rto_due, self._expiries = RTO_INITIAL, None, 0
        self._busy_until = None
        self._prod_seq, self._prod_count, self._prod_due = -1, 0, None
        self._expected = peer_isn
        self._unsettled.clear()
        self._replies.clear()
        self._events.append(SessionStarted(peer))

    def _on_frame(self, frame: Frame) -> None:
        ftype = frame.type
        # plain ints: an enum member lookup per frame costs more than the comparison (a hot path)
        if ftype == _HELLO:
            peer = self._parse_hello(frame.payload)
            if peer is not None and (self._yields or self._hello_due is None):
                isn = self._rng.randrange(0x10000)
                peer["isn"] = int(peer["isn"]) & 0xFFFF  # _parse_hello checked it is a number
                self._write(encode(FrameType.HELLO_ACK, 0, self._hello_payload(isn, answering=peer["isn"])))
                self._start(isn, peer)
        elif ftype == _HELLO_ACK:
            peer = self._parse_hello(frame.payload)
            # Only the answer to our latest HELLO counts: an answer to an earlier one
            # carries numbers the peer has already replaced.
            if peer is not None and self._hello_due is not None and peer.get("re") == self._hello_isn:
                self._start(self._hello_isn, peer)
        elif ftype == _ACK:
            self._on_ack(frame)
        elif ftype == _NACK:
            self._on_nack(frame)
        elif is_sequenced(ftype):
            self._on_sequenced(frame)

    def _parse_hello(self, payload: bytes) -> dict[str, Any] | None:
        try:
            peer = json.loads(payload)
        except ValueError:
            peer = None
        # Checked before anything is answered: a HELLO_ACK sent for a HELLO we then fail to
        # start from would leave the peer in a session we are not in.
        try:
            ok = (
                isinstance(peer, dict)
                and isinstance(peer["isn"], (int, float))
                and (int(peer["isn"]) >= 0 and 1 <= int(peer.get("win", 8)) <= 0xFFFF)
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            self.counters.frame_errors["hello"] = self.counters.frame_errors.get("hello", 0) + 1
            return None
        return peer

    # receiver

    def _on_sequenced(self, frame: Frame) -> None:
        if not self.up:
            self._count_nack_tx(NackReason.NO_SESSION)
            self._write(encode(FrameType.NACK, frame.seq, bytes([NackReason.NO_SESSION])))
            return
        dist = seq_distance(frame.seq, self._expected)
        if dist == 0:
            reason = self._busy()
            if reason:
                self._count_nack_tx(NackReason.BUSY)
                self._write(
                    encode(FrameType.NACK, frame.seq, bytes([NackReason.BUSY]) + reason.encode()[:200])
                )
                return
            self._expected = (self._expected + 1) & 0xFFFF
            self._unsettled.add(frame.seq)
            if frame.type in self._accept:
                self._events.append(Received(frame))
            else:
                self.nack(frame.seq, NackReason.UNSUPPORTED, f"frame type 0x{frame.type:02x}")
        elif -DUPLICATE_SPAN <= dist < 0:
            self.counters.duplicates_rx += 1
            reply = self._replies.get(frame.seq)
            if reply is not None:
                self._write(reply)
        else:
            self.counters.gaps_rx += 1
            now = self._clock()
            # One GAP per hole and per burst: the frames after a hole all arrive out of order
            # and one GAP covers them. Again at once for a new hole, or when a frame not
            # beyond the furthest one seen shows that the sender went back and its resend of
            # the hole was lost too; otherwise at most once per 100 ms. A lost resend is
            # then recovered in a round trip instead of an RTO.
            new_hole = self._expected != self._last_gap_expected
            resent = 0 < dist <= self._gap_highest
            if new_hole or resent or now - self._last_gap_nack >= GAP_NACK_INTERVAL:
                self._last_gap_nack = now
                self._last_gap_expected = self._expected
                self._gap_highest = max(dist, 0)
                self._count_nack_tx(NackReason.GAP)
                self._write(
                    encode(
                        FrameType.NACK,
                        frame.seq,
                        bytes([NackReason.GAP]) + self._expected.to_bytes(2, "big"),
                    )
                )
            else:
                self._gap_highest = max(self._gap_highest, dist)

    def _count_nack_tx(self, reason: NackReason) -> None:
        self.counters.nacks_tx[reason.name] = self.counters.nacks_tx.get(reason.name, 0) + 1

    def _settle(self, seq: int, reply: bytes) -> None:
        if seq not in self._unsettled:
            return  # settled already, or from a session that has since been reset
        self._unsettled.discard(seq)
        self._replies[seq] = reply
        while len(self._replies) > DUPLICATE_SPAN:
            self._replies.popitem(last=False)
        self._write(reply)

    # sender

    def _pump(self) -> None:
        """Put frames on the wire while the window and the peer allow."""
        if not self.up or self._busy_until is not None:
            return
        # min(): frames queued before the session may outnumber a smaller window the peer chose
        while self._in_flight < min(len(self._unacked), self._window):
            item = self._unacked[self._in_flight]
            if not item.numbered:  # numbers hold for the session; a new session renumbers
                # The window also bounds the span of sequence numbers from the oldest unACKed
                # frame: ACKs are not cumulative, so while one ACK is lost the others keep
                # the window open, and without this bound the sequence would run more than
                # DUPLICATE_SPAN past that frame; its resend would then get NACK GAP instead
                # of the cached ACK, and only a link-down (and a duplicate) would clear it.
                oldest = self._unacked[0]
                if oldest.numbered and seq_distance(self._next_seq, oldest.seq) >= self._window:
                    break
                item.seq, item.numbered = self._next_seq, True
                self._next_seq = (self._next_seq + 1) & 0xFFFF
            self._write(encode(item.type, item.seq, item.payload))
            self._in_flight += 1
            if self._rto_due is None:
                self._rto_due = self._clock() + self._rto

    def _find(self, seq: int) -> int | None:
        # Every numbered frame, not only the first _in_flight: after a go-back the frames
        # past _in_flight are still on the wire and their ACKs still count.
        for i, item in enumerate(self._unacked):
            if not item.numbered:
                break
            if item.seq == seq:
                return i
        return None

    def _on_ack(self, frame: Frame) -> None:
        i = self._find(frame.seq)
        if i is None:
            return  # an ACK we already had, or one from an older session
        self.counters.acks_rx += 1
        item = self._unacked[i]
        del self._unacked[i]
        if i < self._in_flight:
            self._in_flight -= 1
        # The receiver delivers in order, so an older frame still unACKed was delivered and
        # its ACK is pending or lost. Resend ("prod") the oldest: a duplicate is answered
        # with the cached ACK (or ignored while pending), which recovers a lost ACK in a
        # round trip instead of an RTO. Again every PROD_INTERVAL (at most PROD_MAX times),
        # because once the window's span is used up no newer ACK comes to trigger it.
        if i > 0:
            self._prod()
        self._rto, self._expiries = RTO_INITIAL, 0
        self._busy_backoff = BUSY_BACKOFF_INITIAL
        self._rto_due = self._clock() + self._rto if self._in_flight else None
        self._events.append(Acked(item.token, frame.payload))

    def _on_nack(self, frame: Frame) -> None:
        if not frame.payload:
            return
        try:
            reason = NackReason(frame.payload[0])
        except ValueError:
            return
        self.counters.nacks_rx[reason.name] = self.counters.nacks_rx.get(reason.name, 0) + 1
        data = frame.payload[1:]
        if reason == NackReason.NO_SESSION:
            if self._hello_due is None:
                self.connect()
            return
        if reason == NackReason.VERSION:
            return
        if reason == NackReason.GAP:
            if len(data) >= 2:
                self._go_back_to(int.from_bytes(data[:2], "big"))
            return
        i = self._find(frame.seq)
        if i is None:
            return
        if reason == NackReason.BUSY:
            # Keep everything; resend from the refused frame after the back-off.
            self._busy_until = self._clock() + self._busy_backoff
            self._busy_backoff = min(self._busy_backoff * 2, BUSY_BACKOFF_MAX)
            self._rto_due = None
            self._expiries = 0
            return
        item = self._unacked[i]
        del self._unacked[i]
        if i < self._in_flight:
            self._in_flight -= 1
        self._events.append(Refused(item.token, reason, data.decode("utf-8", "replace")))

    def _prod(self) -> None:
        if not self.up or self._busy_until is not None or not self._in_flight:
            return
        oldest = self._unacked[0]
        if oldest.seq != self._prod_seq:
            self._prod_seq, self._prod_count, self._prod_due = oldest.seq, 0, None
        if self._prod_due is not None or self._prod_count >= PROD_MAX:
            return  # prodded less than PROD_INTERVAL ago, or given up: the RTO takes over
        self._prod_count += 1
        self._prod_due = self._clock() + PROD_INTERVAL
        self.counters.retransmits += 1
        self._write(encode(oldest.type, oldest.seq, oldest.payload))

    def _go_back_to(self, expected: int) -> None:
        now = self._clock()
        i = self._find(expected)
        if i is None:
            return
        if (
            expected == self._last_gap_target
            and now - self._last_gap_retransmit < GAP_NACK_INTERVAL
            and self._in_flight <= i
        ):
            return  # the same hole again and our resend of it has not even gone out yet
        self._last_gap_retransmit = now
        self._last_gap_target = expected
        i = min(i, self._in_flight)  # never skip frames that are waiting to be resent
        self.counters.retransmits += self._in_flight - i
        self._in_flight = i  # _pump resends from here
        self._rto_due = now + self._rto

    def _expire(self) -> None:
        self._expiries += 1
        if self._expiries >= EXPIRIES_BEFORE_DOWN:
            self.counters.link_lost += 1
            self._events.append(LinkLost(f"no ACK after {self._expiries} retransmissions"))
            self.connect()
            self._rto_due = None
            return
        self._rto = min(self._rto * 2, RTO_MAX)
        self.counters.retransmits += self._in_flight
        self._in_flight = 0
        self._prod_count, self._prod_due = 0, None  # everything goes again: prods start afresh
        self._rto_due = self._clock() + self._rto if self._unacked else None
