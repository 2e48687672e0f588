"""Two link endpoints wired together in-process under a fake clock, with a faulty channel.

The edge end is always edge.link.session.Session (yields=True). The module end is either
another Session (yields=False) or the firmware's fp.link.Link imported under CPython, so
the same scenarios check both implementations against the edge.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.link import session as S
from edge.link.frame import FrameType, NackReason
from edge.sim import FIRMWARE_DIR


class FakeClock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def ms(self) -> int:
        return int(self.t * 1000) & 0x3FFFFFFF


def import_firmware_link():
    import sys

    if str(FIRMWARE_DIR) not in sys.path:
        sys.path.insert(0, str(FIRMWARE_DIR))
    from fp import link

    return link


@dataclass
class Endpoint:
    """Uniform face over Session and fp.link.Link, with a simple application on top."""

    name: str
    impl: Any
    firmware: bool
    delivered: list[tuple[int, bytes]] = field(default_factory=list)  # (type, payload)
    acked: list[tuple[Any, bytes]] = field(default_factory=list)
    refused: list[tuple[Any, int, str]] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    auto_ack: bool = True
    on_received: Callable[[Endpoint, int, int, bytes], None] | None = None
    pending: list[int] = field(default_factory=list)  # received, not settled

    def handle(self, events) -> None:
        for ev in events:
            if self.firmware:
                link = import_firmware_link()
                kind = ev[0]
                if kind == link.EV_STARTED:
                    self.sessions.append(ev[1])
                elif kind == link.EV_RECEIVED:
                    self._received(ev[1], ev[2], bytes(ev[3]))
                elif kind == link.EV_ACKED:
                    self.acked.append((ev[1], ev[2]))
                elif kind == link.EV_REFUSED:
                    self.refused.append((ev[1], ev[2], ev[3]))
                elif kind == link.EV_LOST:
                    self.lost.append(ev[1])
            elif isinstance(ev, S.SessionStarted):
                self.sessions.append(ev.peer)
            elif isinstance(ev, S.Received):
                self._received(ev.frame.type, ev.frame.seq, ev.frame.payload)
            elif isinstance(ev, S.Acked):
                self.acked.append((ev.token, ev.result))
            elif isinstance(ev, S.Refused):
                self.refused.append((ev.token, int(ev.reason), ev.text))
            elif isinstance(ev, S.LinkLost):
                self.lost.append(ev.reason)

    def _received(self, ftype: int, seq: int, payload: bytes) -> None:
        self.delivered.append((ftype, payload))
        if self.on_received is not None:
            self.on_received(self, ftype, seq, payload)
        elif self.auto_ack:
            self.impl.ack(seq, b"ok:" + payload[:8])
        else:
            self.pending.append(seq)

    def nack(self, seq: int, reason: int, text: str = "") -> None:
        self.impl.nack(seq, reason if self.firmware else NackReason(reason), text)

    @property
    def up(self) -> bool:
        return self.impl.up

    def can_send(self) -> bool:
        return self.impl.can_send()

    def send(self, ftype: int, payload: bytes, token: Any = None) -> None:
        self.impl.send(ftype, payload, token)

    def connect(self) -> None:
        self.impl.connect()

    def poll(self) -> None:
        self.handle(self.impl.poll())

    def receive(self, data: bytes) -> None:
        self.handle(self.impl.receive(data))

    def take_output(self) -> bytes:
        return self.impl.take_output()


def edge_end(clock: FakeClock, rng: random.Random, **kw) -> Endpoint:
    hello = {"edge": "0.1.0", "time": 1767225600}
    accept = kw.pop("accept", (FrameType.UPLINK, FrameType.STATUS, FrameType.LOG))
    return Endpoint("edge", S.Session(hello, clock=clock, rng=rng, accept=accept, yields=True, **kw), False)


def module_end(kind: str, clock: FakeClock, rng: random.Random, **kw) -> Endpoint:
    hello = {"id": "0123456789abcdef", "fw": "0.1.0", "role": "bridge", "board": "unix"}
    accept = tuple(kw.pop("accept", (FrameType.DOWNLINK,)))
    if kind == "session":
        impl = S.Session(hello, clock=clock, rng=rng, accept=accept, yields=False, **kw)
        return Endpoint("module", impl, False)
    link = import_firmware_link()
    impl = link.Link(hello, clock.ms, rand16=lambda: rng.randrange(0x10000), accept=accept, **kw)
    return Endpoint("module", impl, True)


class Channel:
    """One direction of the cable. Faults act on whole frames (split at delimiters) or bytes."""

    def __init__(self, rng: random.Random, *, loss=0.0, dup=0.0, reorder=0.0, byte_error=0.0, delay=0.002):
        self.rng = rng
        self.loss, self.dup, self.reorder, self.byte_error = loss, dup, reorder, byte_error
        self.delay = delay
        self.cut = False  # True: nothing gets through (cable pulled)
        self.queue: list[tuple[float, bytes]] = []
        self.frames = 0
        self.lose_next = 0  # this many of the next non-empty frames are lost (see lost)
        self.lost: list[bytes] = []

    def put(self, now: float, data: bytes) -> None:
        if not data:
            return
        pieces = [p + b"\x00" for p in data.split(b"\x00")[:-1]]
        if data[-1:] != b"\x00":
            pieces.append(data.rsplit(b"\x00", 1)[-1])
        out: list[bytes] = []
        for piece in pieces:
            self.frames += 1
            if self.cut or self.rng.random() < self.loss:
                continue
            if self.lose_next and piece.strip(b"\x00"):
                self.lose_next -= 1
                self.lost.append(piece)
                continue
            if self.byte_error:
                b = bytearray(piece)
                for i in range(len(b)):
                    if self.rng.random() < self.byte_error:
                        b[i] ^= self.rng.randrange(1, 256)
                piece = bytes(b)
            out.append(piece)
            if self.rng.random() < self.dup:
                out.append(piece)
        if self.reorder and len(out) > 1:
            for i in range(len(out) - 1):
                if self.rng.random() < self.reorder:
                    out[i], out[i + 1] = out[i + 1], out[i]
        for piece in out:
            self.queue.append((now + self.delay, piece))

    def take_due(self, now: float) -> bytes:
        due = b"".join(p for t, p in self.queue if t <= now)
        self.queue = [(t, p) for t, p in self.queue if t > now]
        return due


class Wire:
    """Runs an edge and a module end against each other, a step of fake time at a time."""

    def __init__(self, edge: Endpoint, module: Endpoint, clock: FakeClock, up: Channel, down: Channel):
        self.edge, self.module, self.clock = edge, module, clock
        self.up, self.down = up, down  # up: module -> edge; down: edge -> module

    def step(self, dt: float = 0.005) -> None:
        now = self.clock.t
        self.up.put(now, self.module.take_output())
        self.down.put(now, self.edge.take_output())
        data = self.up.take_due(now)
        if data:
            self.edge.receive(data)
        data = self.down.take_due(now)
        if data:
            self.module.receive(data)
        self.edge.poll()
        self.module.poll()
        self.clock.t += dt

    def run(self, seconds: float, until: Callable[[], bool] | None = None, dt: float = 0.005) -> bool:
        end = self.clock.t + seconds
        while self.clock.t < end:
            self.step(dt)
            if until is not None and until():
                return True
        return until() if until is not None else True


def make_wire(kind: str, seed: int = 1, *, edge_kw=None, module_kw=None, **channel_kw) -> Wire:
    rng = random.Random(seed)
    clock = FakeClock()
    edge = edge_end(clock, random.Random(rng.random()), **(edge_kw or {}))
    module = module_end(kind, clock, random.Random(rng.random()), **(module_kw or {}))
    up = Channel(random.Random(rng.random()), **channel_kw)
    down = Channel(random.Random(rng.random()), **channel_kw)
    return Wire(edge, module, clock, up, down)
