"""Read an ``strace`` log and check the power-cut rule: no ACK leaves before its WAL is on disk.

The log comes from ``strace -f -tt -y -xx -s N -o FILE`` (one file for every thread):
``-y`` prints the path behind every fd argument, so fds need no bookkeeping across
opens, closes and reuse; ``-xx`` prints every string (paths too) as ``\\xNN``.
Lines are in the order strace saw the events, across threads; a call that another
thread interrupts is split into ``name(... <unfinished ...>`` and ``<... name resumed>``,
so every call here has an entry position and an exit position in that order.

Pure parsing and checking: the test runs the processes, this module only reads text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edge.link.frame import Deframer, FrameType, is_sequenced
from edge.lorawan import frames as lw
from edge.radio import RadioFormatError, parse_frame, parse_serial_uplink

TRACED = "openat,close,read,write,pwrite64,fsync,fdatasync"
SYNCS = ("fsync", "fdatasync")
WAL_WRITES = ("write", "pwrite64")

_LINE = re.compile(r"^(?P<tid>\d+)\s+(?P<ts>\d\d:\d\d:\d\d\.\d+)\s+(?P<rest>.*)$")
_UNFINISHED = re.compile(r"^(?P<name>\w+)\((?P<args>.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<args>.*)$")
_COMPLETE = re.compile(r"^(?P<name>\w+)\((?P<args>.*)$")
_RESULT = re.compile(r"\)\s+=\s+(?P<result>-?\d+|\?)(?:\s.*)?$")
_FD = re.compile(r"^(?P<fd>\d+)<(?P<path>(?:\\x[0-9a-f]{2})*)>")
_STRING = re.compile(r'"(?P<hex>(?:\\x[0-9a-f]{2})*)"(?P<cut>\.\.\.)?')


class TraceFormatError(ValueError):
    pass


@dataclass
class Syscall:
    tid: int
    name: str
    entry: int  # position of the line where the call started
    exit: int = -1  # position of the line where it returned (-1: never returned in the log)
    args: str = ""
    result: int | None = None

    @property
    def path(self) -> str | None:
        m = _FD.match(self.args)
        return _unhex(m.group("path")).decode("utf-8", "replace") if m else None

    @property
    def data(self) -> bytes:
        """The first string argument; raises if strace cut it short (-s too small)."""
        m = _STRING.search(self.args)
        if m is None:
            return b""
        if m.group("cut"):
            raise TraceFormatError(f"{self.name} at line {self.entry}: string cut short, raise strace -s")
        data = _unhex(m.group("hex"))
        if self.name == "read" and self.result is not None and self.result >= 0:
            data = data[: self.result]
        return data


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace("\\x", ""))


def parse(text: str) -> list[Syscall]:
    """Every system call of the log, in the order they started."""
    calls: list[Syscall] = []
    open_by_tid: dict[int, Syscall] = {}
    for pos, line in enumerate(text.splitlines()):
        m = _LINE.match(line)
        if m is None:
            continue
        tid, rest = int(m.group("tid")), m.group("rest")
        if rest.startswith(("+++", "---")):
            continue  # exits and signals
        if u := _UNFINISHED.match(rest):
            call = Syscall(tid, u.group("name"), pos, args=u.group("args"))
            open_by_tid[tid] = call
            calls.append(call)
            continue
        if r := _RESUMED.match(rest):
            call = open_by_tid.pop(tid, None)
            if call is None or call.name != r.group("name"):
                continue  # resumed a call that started before tracing began
            call.args += r.group("args")
        elif c := _COMPLETE.match(rest):
            call = Syscall(tid, c.group("name"), pos, args=c.group("args"))
            calls.append(call)
        else:
            continue
        call.exit = pos
        res = _RESULT.search(call.args)
        if res and res.group("result") != "?":
            call.result = int(res.group("result"))
    return calls


@dataclass
class Ack:
    """An ACK frame the traced process wrote to the serial port for an UPLINK it had read."""

    write: Syscall
    seq: int
    result: int  # first byte: 0 stored, 1 duplicate, other codes are rejections
    reading: tuple[str, int] | None  # (device id, fcnt) of the UPLINK it answers


@dataclass
class Violation:
    ack: Ack
    why: str


@dataclass
class Report:
    acks: list[Ack] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    wal_syncs: int = 0
    wal_writes: int = 0
    uplinks_read: int = 0

    @property
    def stored(self) -> set[tuple[str, int]]:
        return {a.reading for a in self.acks if a.result == 0 and a.reading is not None}


def uplink_acks(
    calls: list[Syscall], port_path: str, devices: dict[int, str] | None = None
) -> tuple[list[Ack], int]:
    """Decode both directions of the port: UPLINKs read (by seq) and the ACKs written for them.
    ``devices``: the device id of each DevAddr, for LoRaWAN uplinks (of a fresh ABP session, whose
    reading ids are their FCnts)."""
    rx, tx = Deframer(), Deframer()
    uplink_by_seq: dict[int, tuple[str, int] | None] = {}
    acks: list[Ack] = []
    uplinks = 0
    # Reads complete at their exit, writes start at their entry: order by those positions.
    events = [(c.exit, c) for c in calls if c.name == "read" and c.exit >= 0 and c.path == port_path]
    events += [(c.entry, c) for c in calls if c.name == "write" and c.path == port_path]
    for _, call in sorted(events, key=lambda e: e[0]):
        if call.name == "read":
            for frame in rx.feed(call.data):
                if not is_sequenced(frame.type):
                    continue
                # A later frame with the same seq (a new session renumbers) replaces the older one.
                uplink_by_seq[frame.seq] = (
                    _reading_of(frame.payload, devices or {}) if frame.type == FrameType.UPLINK else None
                )
                if frame.type == FrameType.UPLINK:
                    uplinks += 1
            continue
        for frame in tx.feed(call.data):
            if frame.type != FrameType.ACK or frame.seq not in uplink_by_seq:
                continue
            reading = uplink_by_seq[frame.seq]
            if reading is None:
                continue  # the ACK of a STATUS or LOG frame: carries no reading
            acks.append(Ack(call, frame.seq, frame.payload[0] if frame.payload else -1, reading))
    return acks, uplinks


def _reading_of(payload: bytes, devices: dict[int, str]) -> tuple[str, int] | None:
    try:
        frame = parse_serial_uplink(payload).frame
        if frame[:1] == bytes([lw.CONFIRMED_UP]):
            data = lw.parse_data(frame)
            return (devices[data.devaddr], data.fcnt16) if data.devaddr in devices else None
        radio = parse_frame(frame)
    except (RadioFormatError, lw.LoRaWANFormatError, ValueError):
        return None
    return radio.device_id, radio.fcnt


def check_acks_after_wal_sync(
    text: str, *, port_path: str, db_path: str, devices: dict[int, str] | None = None
) -> Report:
    """For every ACK of an UPLINK on ``port_path``: every WAL write that started before the ACK's
    write() must have returned, and an fsync/fdatasync of the WAL must have started after it and
    returned before the ACK's write() started. Otherwise a power cut could lose an ACKed reading."""
    calls = parse(text)
    wal = db_path + "-wal"
    wal_writes = [c for c in calls if c.name in WAL_WRITES and c.path == wal]
    wal_syncs = [c for c in calls if c.name in SYNCS and c.path == wal and c.result == 0]
    acks, uplinks = uplink_acks(calls, port_path, devices)
    report = Report(acks=acks, wal_syncs=len(wal_syncs), wal_writes=len(wal_writes), uplinks_read=uplinks)
    for ack in acks:
        sent = ack.write.entry
        before = [w for w in wal_writes if w.entry < sent]
        if not before:
            if ack.result == 0:
                report.violations.append(
                    Violation(ack, "ACK 'stored' before anything was written to the WAL")
                )
            continue
        last = before[-1]
        if last.exit < 0 or last.exit > sent:
            report.violations.append(
                Violation(ack, f"WAL write at line {last.entry} still running at the ACK")
            )
            continue
        if not any(last.exit < s.entry and 0 <= s.exit < sent for s in wal_syncs):
            report.violations.append(
                Violation(
                    ack,
                    f"ACK written at line {sent} with the WAL write of line {last.entry} not yet synced",
                )
            )
    return report
