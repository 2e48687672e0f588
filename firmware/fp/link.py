# Reliable-delivery state machine of the serial link, firmware side, without I/O.
# Same rules and behaviour as the edge's edge/link/session.py (docs/protocol.md
# sections 3 and 4). The module side does not yield when both sides send HELLO at
# once (yields=False): it ignores the edge's HELLO while it waits for its own answer.
#
# API (small and stable; the bridge role and fp/linkio.py build on it):
#   lk = Link(hello, clock, rand16=None, window=8, accept=(DOWNLINK,), busy=None, yields=False)
#     hello   dict announced in HELLO/HELLO_ACK (id, fw, role, board); proto/isn/win added here
#     clock   callable -> milliseconds in time.ticks_ms() form (compared with ticks_diff)
#     rand16  callable -> random 0..65535 (default: os.urandom)
#     accept  sequenced frame types this side takes; others get NACK UNSUPPORTED
#     busy    callable -> None, or a short str: frames are then refused with NACK BUSY
#   lk.connect()                        HELLO now and every second until HELLO_ACK
#   lk.can_send() -> bool               room in the window (back-pressure)
#   lk.send(ftype, payload, token)      queue a sequenced frame; OverflowError when full
#   lk.receive(data) -> events          bytes read from the UART
#   lk.poll() -> events                 run the timers; call at least every ms_to_deadline()
#   lk.ms_to_deadline() -> int          ms until the next timer (-1: no timer running)
#   lk.take_output() -> bytes           what to write to the UART (b"" when nothing)
#   lk.ack(seq, result=b"")             a received frame is handled (durable): ACK it
#   lk.nack(seq, reason, text="")       refuse a received frame (NACK_INVALID/NACK_UNSUPPORTED)
#   lk.up, lk.peer, lk.unacked(), lk.counters (dict), lk.deframer.errors (dict)
# Events: a list of tuples whose first item says what happened:
#   (EV_STARTED, peer)                  a session is up; peer is the other side's HELLO dict
#   (EV_RECEIVED, ftype, seq, payload)  a sequenced frame, in order, once; settle with ack/nack
#   (EV_ACKED, token, result)           the peer ACKed the frame sent with this token
#   (EV_REFUSED, token, reason, text)   the peer refused it (NACK UNSUPPORTED/INVALID): dropped
#   (EV_LOST, text)                     no ACK after 10 expiries: a new session is being started
import json

from fp.frame import (
    ACK,
    DOWNLINK,
    HELLO,
    HELLO_ACK,
    NACK,
    NACK_BUSY,
    NACK_GAP,
    NACK_NO_SESSION,
    NACK_UNSUPPORTED,
    NACK_VERSION,
    Deframer,
    encode,
    is_sequenced,
)

try:
    from micropython import const
except ImportError:  # CPython, for the cross-implementation tests
    def const(x):
        return x

try:
    from time import ticks_add, ticks_diff
except ImportError:  # CPython: same arithmetic as MicroPython's ticks (period 2**30)
    def ticks_add(t, d):
        return (t + d) & 0x3FFFFFFF

    def ticks_diff(a, b):
        return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000

EV_STARTED = const(1)
EV_RECEIVED = const(2)
EV_ACKED = const(3)
EV_REFUSED = const(4)
EV_LOST = const(5)

RTO_INITIAL = const(300)
RTO_MAX = const(3000)
EXPIRIES_BEFORE_DOWN = const(10)
BUSY_BACKOFF_INITIAL = const(1000)
BUSY_BACKOFF_MAX = const(30000)
HELLO_RETRY = const(1000)
GAP_NACK_INTERVAL = const(100)
DUPLICATE_SPAN = const(64)
MAX_WINDOW = const(32)
PROD_INTERVAL = const(50)  # resend of an ACK-less oldest frame, see _on_ack
PROD_MAX = const(4)

# fields of an outgoing frame (a small list, mutated in place)
_TYPE = const(0)
_PAYLOAD = const(1)
_TOKEN = const(2)
_SEQ = const(3)  # -1: not numbered in the current session yet

_NO_EVENTS = ()


def _urandom16():
    from os import urandom
    b = urandom(2)
    return (b[0] << 8) | b[1]


def _sooner(best, t, now):
    # best (ms, -1: none yet) or the ms to timer t (None: not running), whichever is sooner
    if t is None:
        return best
    d = max(ticks_diff(t, now), 0)
    return d if best < 0 or d < best else best


def seq_distance(a, b):
    # signed distance a - b in 16-bit sequence space
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


class Link:
    def __init__(self, hello, clock, rand16=None, window=8, accept=(DOWNLINK,), busy=None,
                 yields=False):
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError("window")
        self._hello = hello
        self._clock = clock
        self._rand16 = rand16 or _urandom16
        self._my_window = window
        self._accept = accept
        self._busy = busy
        self._yields = yields
        self.deframer = Deframer(self._frame_error)
        self.counters = {"frames_rx": 0, "frames_tx": 0, "retransmits": 0, "dup_rx": 0,
                         "gap_rx": 0, "acks_rx": 0, "nacks_rx": 0, "nacks_tx": 0,
                         "sessions": 0, "link_lost": 0, "hello_bad": 0, "rto_expiries": 0}
        self._out = bytearray()
        self._events = []
        self.up = False
        self.peer = {}
        self._hello_isn = -1
        self._hello_due = None  # ticks when to (re)send our HELLO; None: not connecting
        self._window = window
        # sender
        self._next_seq = 0
        self._unacked = []  # [type, payload, token, seq]; numbered ones first, in seq order
        self._in_flight = 0  # the first _in_flight of _unacked are on the wire
        self._rto = RTO_INITIAL
        self._rto_due = None
        self._expiries = 0
        self._busy_backoff = BUSY_BACKOFF_INITIAL
        self._busy_until = None
        self._last_gap_retransmit = None
        self._prod_seq = -1  # the oldest frame we are prodding for its lost ACK
        self._prod_count = 0
        self._prod_due = None
        self._last_gap_target = -1
        # receiver
        self._expected = 0
        self._unsettled = set()
        # The last DUPLICATE_SPAN ACK/NACK frames sent, for duplicates: a ring of preallocated slots,
        # not a dict, so settling a frame never allocates a table (a 64K heap fragments)
        self._reply_seq = [-1] * DUPLICATE_SPAN
        self._reply_data = [None] * DUPLICATE_SPAN
        self._reply_i = 0
        self._last_gap_nack = None
        self._last_gap_expected = -1
        self._gap_highest = 0  # furthest out-of-order frame past expected since that GAP
        self._version_nack_at = None

    # --- application API

    def connect(self):
        self.up = False
        # Unsettled frames of the old session are not ACKed any more: once the peer has our
        # HELLO it renumbers, and a late ACK could match a new frame. The peer resends them.
        self._unsettled.clear()
        self._hello_due = self._clock()
        self._poll_hello()

    def can_send(self):
        return len(self._unacked) < self._window

    def unacked(self):
        return len(self._unacked)

    def send(self, ftype, payload, token=None):
        if not is_sequenced(ftype):
            raise ValueError("not a sequenced type")
        if len(self._unacked) >= self._window:
            raise OverflowError("link window full")
        self._unacked.append([ftype, bytes(payload), token, -1])
        self._pump()

    def ack(self, seq, result=b""):
        self._settle(seq, encode(ACK, seq, result))

    def nack(self, seq, reason, text=""):
        data = bytearray(1)
        data[0] = reason
        data.extend(text.encode()[:200])
        if self._settle(seq, encode(NACK, seq, data)):
            self.counters["nacks_tx"] += 1

    def receive(self, data):
        for f in self.deframer.feed(data):
            self.counters["frames_rx"] += 1
            self._on_frame(f[0], f[1], f[2])
        self._pump()
        return self._take_events()

    def poll(self):
        self._poll_hello()
        now = self._clock()
        if self._busy_until is not None and ticks_diff(now, self._busy_until) >= 0:
            self._busy_until = None
            self._in_flight = 0  # go back to the refused frame
            self._rto_due = None  # a fresh RTO from the resend, not an expiry for the pause
        if (self._rto_due is not None and self._busy_until is None
                and ticks_diff(now, self._rto_due) >= 0):
            self._expire()
        if self._prod_due is not None and ticks_diff(now, self._prod_due) >= 0:
            self._prod_due = None
            if self._in_flight and self._unacked[0][_SEQ] == self._prod_seq:  # still no ACK
                self._prod()
        self._pump()
        return self._take_events()

    def ms_to_deadline(self):
        # called by fp/linkio.py every few ms: no tuple of the timers built per call (garbage)
        now = self._clock()
        best = _sooner(-1, self._hello_due, now)
        best = _sooner(best, self._rto_due, now)
        best = _sooner(best, self._busy_until, now)
        return _sooner(best, self._prod_due, now)

    def take_output(self):
        # a batch starts with a delimiter (an empty frame, ignored by the peer): it ends any
        # partial frame left in the peer's buffer by a corrupted delimiter, which would
        # otherwise swallow our first frame, after a stall the very resend meant to recover
        if not self._out:
            return b""
        out = b"\x00" + self._out
        self._out = bytearray()
        return out

    # --- internals

    def _take_events(self):
        if not self._events:
            return _NO_EVENTS
        ev = self._events
        self._events = []
        return ev

    def _write(self, data):
        self.counters["frames_tx"] += 1
        self._out.extend(data)

    def _nack_frame(self, seq, reason, data=b""):
        payload = bytearray(1)
        payload[0] = reason
        payload.extend(data)
        self.counters["nacks_tx"] += 1
        self._write(encode(NACK, seq, payload))

    def _frame_error(self, reason):
        if reason == "version":
            now = self._clock()
            if self._version_nack_at is None or ticks_diff(now, self._version_nack_at) >= 1000:
                self._version_nack_at = now
                self._nack_frame(0, NACK_VERSION, b"\x01")

    def _hello_payload(self, isn, answering=None):
        body = {}
        for k in self._hello:
            body[k] = self._hello[k]
        body["proto"] = 1
        body["isn"] = isn
        body["win"] = self._my_window
        if answering is not None:
            body["re"] = answering
        return json.dumps(body).encode()

    def _poll_hello(self):
        if self._hello_due is not None and ticks_diff(self._clock(), self._hello_due) >= 0:
            self._hello_isn = self._rand16() & 0xFFFF
            self._write(encode(HELLO, 0, self._hello_payload(self._hello_isn)))
            self._hello_due = ticks_add(self._clock(), HELLO_RETRY)

    def _parse_hello(self, payload):
        # Checked before anything is answered, so that a HELLO_ACK never goes out for a
        # HELLO we could not start from. Returns (peer, isn, win) or None.
        try:
            peer = json.loads(bytes(payload).decode())
            isn = peer["isn"]
            win = peer.get("win", 8)
            if isinstance(isn, bool) or isinstance(win, bool):
                raise TypeError
            isn = int(isn)
            win = int(win)
            if isn < 0 or win < 1:
                raise ValueError
            return peer, isn & 0xFFFF, win
        except Exception:  # noqa: BLE001 - bad JSON, not a dict, silly numbers: all counted
            self.counters["hello_bad"] += 1
            return None

    def _start(self, my_isn, peer, peer_isn, peer_win):
        self.up = True
        self.peer = peer
        self.counters["sessions"] += 1
        self._hello_due = None
        w = self._my_window
        w = min(w, peer_win)
        self._window = w
        self._next_seq = my_isn
        for item in self._unacked:  # renumbered and resent in the new session
            item[_SEQ] = -1
        self._in_flight = 0
        self._rto = RTO_INITIAL
        self._rto_due = None
        self._expiries = 0
        self._busy_until = None
        self._prod_seq = -1
        self._prod_count = 0
        self._prod_due = None
        self._expected = peer_isn
        self._unsettled.clear()
        for i in range(DUPLICATE_SPAN):
            self._reply_seq[i] = -1
            self._reply_data[i] = None
        self._events.append((EV_STARTED, peer))

    def _on_frame(self, ftype, seq, payload):
        if ftype == HELLO:
            if self._yields or self._hello_due is None:
                h = self._parse_hello(payload)
                if h is not None:
                    isn = self._rand16() & 0xFFFF
                    self._write(encode(HELLO_ACK, 0, self._hello_payload(isn, h[1])))
                    self._start(isn, h[0], h[1], h[2])
        elif ftype == HELLO_ACK:
            h = self._parse_hello(payload)
            # only the answer to our latest HELLO counts; an older one carries replaced numbers
            if h is not None and self._hello_due is not None and h[0].get("re") == self._hello_isn:
                self._start(self._hello_isn, h[0], h[1], h[2])
        elif ftype == ACK:
            self._on_ack(seq, payload)
        elif ftype == NACK:
            self._on_nack(seq, payload)
        elif is_sequenced(ftype):
            self._on_sequenced(ftype, seq, payload)

    # receiver

    def _on_sequenced(self, ftype, seq, payload):
        if not self.up:
            self._nack_frame(seq, NACK_NO_SESSION)
            return
        dist = seq_distance(seq, self._expected)
        if dist == 0:
            reason = self._busy() if self._busy else None
            if reason:
                self._nack_frame(seq, NACK_BUSY, reason.encode()[:200])
                return
            self._expected = (self._expected + 1) & 0xFFFF
            self._unsettled.add(seq)
            if ftype in self._accept:
                self._events.append((EV_RECEIVED, ftype, seq, payload))
            else:
                self.nack(seq, NACK_UNSUPPORTED, "frame type")
        elif -DUPLICATE_SPAN <= dist < 0:
            self.counters["dup_rx"] += 1
            for i in range(DUPLICATE_SPAN):
                if self._reply_seq[i] == seq:
                    self._write(self._reply_data[i])
                    break
        else:
            self.counters["gap_rx"] += 1
            now = self._clock()
            # one GAP per hole and per burst: again at once for a new hole, or when a frame
            # not beyond the furthest seen shows a lost resend; else once per 100 ms
            if (self._last_gap_nack is None or self._expected != self._last_gap_expected
                    or 0 < dist <= self._gap_highest
                    or ticks_diff(now, self._last_gap_nack) >= GAP_NACK_INTERVAL):
                self._last_gap_nack = now
                self._last_gap_expected = self._expected
                self._gap_highest = max(dist, 0)
                e = self._expected
                self._nack_frame(seq, NACK_GAP, bytes((e >> 8, e & 0xFF)))
            elif dist > self._gap_highest:
                self._gap_highest = dist

    def _settle(self, seq, reply):
        if seq not in self._unsettled:
            return False  # settled already, or from a session that has since been reset
        self._unsettled.discard(seq)
        i = self._reply_i
        self._reply_seq[i] = seq
        self._reply_data[i] = reply
        self._reply_i = (i + 1) % DUPLICATE_SPAN
        self._write(reply)
        return True

    # sender

    def _pump(self):
        if not self.up or self._busy_until is not None:
            return
        # frames queued before the session may exceed the peer's window
        n = min(len(self._unacked), self._window)
        while self._in_flight < n:
            item = self._unacked[self._in_flight]
            if item[_SEQ] < 0:  # numbers hold for the session; a new session renumbers
                # the window also bounds the sequence span from the oldest unACKed frame, so
                # that its resend stays within the peer's duplicate span (see session.py)
                first = self._unacked[0][_SEQ]
                if first >= 0 and seq_distance(self._next_seq, first) >= self._window:
                    break
                item[_SEQ] = self._next_seq
                self._next_seq = (self._next_seq + 1) & 0xFFFF
            self._write(encode(item[_TYPE], item[_SEQ], item[_PAYLOAD]))
            self._in_flight += 1
            if self._rto_due is None:
                self._rto_due = ticks_add(self._clock(), self._rto)

    def _find(self, seq):
        # every numbered frame: after a go-back the ones past _in_flight are still on the wire
        for i, item in enumerate(self._unacked):
            if item[_SEQ] < 0:
                break
            if item[_SEQ] == seq:
                return i
        return -1

    def _remove(self, i):
        item = self._unacked.pop(i)
        if i < self._in_flight:
            self._in_flight -= 1
        return item

    def _on_ack(self, seq, payload):
        i = self._find(seq)
        if i < 0:
            return  # an ACK we already had, or one from an older session
        self.counters["acks_rx"] += 1
        item = self._remove(i)
        # in-order delivery: an older frame still unACKed lost its ACK (or it is pending);
        # prod it, the peer answers with its cached ACK (see session.py)
        if i > 0:
            self._prod()
        self._rto = RTO_INITIAL
        self._expiries = 0
        self._busy_backoff = BUSY_BACKOFF_INITIAL
        self._rto_due = ticks_add(self._clock(), self._rto) if self._in_flight else None
        self._events.append((EV_ACKED, item[_TOKEN], bytes(payload)))

    def _on_nack(self, seq, payload):
        if not payload:
            return
        reason = payload[0]
        if reason < NACK_BUSY or reason > NACK_VERSION:
            return
        self.counters["nacks_rx"] += 1
        if reason == NACK_NO_SESSION:
            if self._hello_due is None:
                self.connect()
            return
        if reason == NACK_VERSION:
            return
        if reason == NACK_GAP:
            if len(payload) >= 3:
                self._go_back_to((payload[1] << 8) | payload[2])
            return
        i = self._find(seq)
        if i < 0:
            return
        if reason == NACK_BUSY:
            # keep everything; resend from the refused frame after the back-off
            self._busy_until = ticks_add(self._clock(), self._busy_backoff)
            self._busy_backoff = min(self._busy_backoff * 2, BUSY_BACKOFF_MAX)
            self._rto_due = None
            self._expiries = 0
            return
        item = self._remove(i)  # UNSUPPORTED or INVALID: dropped, reported
        try:
            text = bytes(payload[1:]).decode()
        except Exception:  # noqa: BLE001 - MicroPython's UnicodeError differs by port
            text = ""
        self._events.append((EV_REFUSED, item[_TOKEN], reason, text))

    def _prod(self):
        if not self.up or self._busy_until is not None or not self._in_flight:
            return
        oldest = self._unacked[0]
        if oldest[_SEQ] != self._prod_seq:
            self._prod_seq = oldest[_SEQ]
            self._prod_count = 0
            self._prod_due = None
        if self._prod_due is not None or self._prod_count >= PROD_MAX:
            return  # prodded less than PROD_INTERVAL ago, or given up: the RTO takes over
        self._prod_count += 1
        self._prod_due = ticks_add(self._clock(), PROD_INTERVAL)
        self.counters["retransmits"] += 1
        self._write(encode(oldest[_TYPE], oldest[_SEQ], oldest[_PAYLOAD]))

    def _go_back_to(self, expected):
        now = self._clock()
        i = self._find(expected)
        if i < 0:
            return
        if (self._last_gap_retransmit is not None and expected == self._last_gap_target
                and ticks_diff(now, self._last_gap_retransmit) < GAP_NACK_INTERVAL
                and self._in_flight <= i):
            return  # the same hole again and our resend of it has not gone out yet
        self._last_gap_retransmit = now
        self._last_gap_target = expected
        i = min(i, self._in_flight)  # never skip frames that are waiting to be resent
        self.counters["retransmits"] += self._in_flight - i
        self._in_flight = i  # _pump resends from here
        self._rto_due = ticks_add(now, self._rto)

    def _expire(self):
        self._expiries += 1
        self.counters["rto_expiries"] += 1
        if self._expiries >= EXPIRIES_BEFORE_DOWN:
            self.counters["link_lost"] += 1
            self._events.append((EV_LOST, "no ACK after 10 retransmissions"))
            self.connect()
            self._rto_due = None
            return
        self._rto = min(self._rto * 2, RTO_MAX)
        self.counters["retransmits"] += self._in_flight
        self._in_flight = 0
        self._prod_count = 0  # everything goes again: prods start afresh
        self._prod_due = None
        self._rto_due = ticks_add(self._clock(), self._rto) if self._unacked else None
