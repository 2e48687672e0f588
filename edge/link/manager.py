"""The serial link manager: which ports to open, one LinkPort (reader thread) per port,
reconnect with backoff after an unplug, and what to do with the frames that arrive.

Ports come from the configuration (fixed paths, e.g. /dev/serial/by-id/... symlinks)
and from discovery: pyserial's ``list_ports`` filtered by the USB VID:PID of the
supported boards. A supervisor thread opens what is missing, retrying a port that
failed or went away after a randomised back-off (``reconnect_min_s`` doubling up to
``reconnect_max_s``), so a module plugged back in is talking again within a second
or two.

Frames: UPLINK goes to the ingest writer and is ACKed from there after the commit;
STATUS is stored (devices.status of the module) and ACKed after its commit; LOG is
logged and ACKed at once (nothing to keep).

Downlinks for a bridge itself go the other way, as serial DOWNLINK frames
(edge.bridge_downlinks): every ``bridge_poll_s`` (and at once when a session starts) the
supervisor asks ``queued`` (a read-only probe) which connected bridges have commands queued,
has the ingest writer mark those sent, and after that commit hands their frames to the port,
within its window. The bridge's NACK of one
marks it failed; its answer on uplink port 2 comes back through ingest like any uplink.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge import bridge_downlinks
from edge.errors import LinkError
from edge.ingest.writer import Item
from edge.link.frame import Frame, FrameType, NackReason
from edge.link.port import LinkPort, PortClosed
from edge.link.session import Acked, LinkLost, Received, Refused, SessionStarted
from edge.logs import kv

log = logging.getLogger("fieldpost.link")

TAKE_STALE_S = 10.0  # a look for bridge downlinks with no answer by then failed in the writer: look again


def discover(usb_ids: list[str], comports: Callable[[], list[Any]] | None = None) -> list[str]:
    """Device paths of the serial ports whose USB VID:PID is one of ``usb_ids``."""
    if comports is None:
        from serial.tools import list_ports

        comports = list_ports.comports
    wanted = {u.lower() for u in usb_ids}
    found = []
    for info in comports():
        if info.vid is None or info.pid is None:
            continue
        if f"{info.vid:04x}:{info.pid:04x}" in wanted:
            found.append(info.device)
    return sorted(found)


@dataclass
class PortState:
    """What the manager knows about one path, across its successive LinkPorts."""

    path: str
    configured: bool
    port: LinkPort | None = None
    opens: int = 0
    failures: int = 0  # consecutive failed opens (back-off exponent)
    next_try: float = 0.0
    last_error: str = ""
    peer: dict[str, Any] = field(default_factory=dict)
    up_since: float | None = None
    # counters of the LinkPorts already closed, so figures survive a reconnect
    past: dict[str, int] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        out = dict(self.past)
        if self.port is not None:
            for name, value in _port_counters(self.port).items():
                out[name] = out.get(name, 0) + value
        out.update(
            path=self.path,
            up=bool(self.port is not None and self.port.up),
            peer_id=self.peer.get("id"),
            role=self.peer.get("role"),
            firmware=self.peer.get("fw"),
            board=self.peer.get("board"),
            reconnects=max(0, self.opens - 1),
            last_error=self.last_error,
            configured=self.configured,
        )
        return out


def _port_counters(port: LinkPort) -> dict[str, int]:
    c = port.counters
    return {
        "frames_rx": c.frames_rx,
        "frames_tx": c.frames_tx,
        "crc_errors": c.frame_errors.get("crc", 0),
        "frame_errors": sum(v for k, v in c.frame_errors.items() if k != "hello"),
        "nacks_tx": sum(c.nacks_tx.values()),
        "nacks_rx": sum(c.nacks_rx.values()),
        "busy_nacks": c.nacks_tx.get("BUSY", 0),
        "retransmits": c.retransmits,
        "sessions": c.sessions,
        "link_lost": c.link_lost,
        "bytes_rx": port.bytes_rx,
        "bytes_tx": port.bytes_tx,
    }


class LinkManager:
    """Keeps every wanted port open and routes its frames.

    ``ingest``: an edge.ingest.Ingestor (``submit`` and ``submit_call``).
    ``busy``: the backpressure callback handed to every Session.
    """

    def __init__(
        self,
        *,
        ingest: Any,
        ports: list[str] = (),
        discover_ports: bool = True,
        usb_ids: list[str] = (),
        baudrate: int = 921_600,
        window: int = 8,
        reconnect_min_s: float = 0.2,
        reconnect_max_s: float = 1.0,
        scan_interval_s: float = 1.0,
        busy: Callable[[], str | None] = lambda: None,
        hello: Callable[[], dict[str, Any]] = dict,
        comports: Callable[[], list[Any]] | None = None,
        port_factory: Callable[..., LinkPort] = LinkPort,
        rng: random.Random | None = None,
        bridge_poll_s: float = 0.5,
        clock: Callable[[], float] = time.time,
        queued: Callable[[list[str]], set[str]] | None = None,
        updates: Any = None,
    ):
        self._ingest = ingest
        self._configured = list(ports)
        self._discover = discover_ports
        self._usb_ids = list(usb_ids)
        self._baudrate = baudrate
        self._window = window
        self._min = reconnect_min_s
        self._max = reconnect_max_s
        self._scan_every = scan_interval_s
        self._busy = busy
        self._hello = hello
        self._comports = comports
        self._port_factory = port_factory
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._states: dict[str, PortState] = {p: PortState(p, configured=True) for p in self._configured}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_scan = float("-inf")
        self._bridge_poll = bridge_poll_s
        self._clock = clock  # wall clock, for downlink expiry
        self._last_bridge_poll = float("-inf")
        self._inflight = bridge_downlinks.InFlight()
        self._taking: dict[str, float] = {}  # bridge id -> when its look for downlinks was submitted
        # which connected modules are bridges with queued downlinks (bridge_downlinks.QueuedProbe);
        # None: ask the writer at every poll, which keeps it from ever idling (tests only; the
        # daemon passes a probe)
        self._queued = queued
        self._probe_failing = False
        self._updates = updates  # edge.fuota.serial.SerialUpdates: firmware updates of bridges

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> LinkManager:
        self._thread = threading.Thread(target=self._supervise, name="fieldpost-links", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every port (call after the ingest writer has flushed its ACKs)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            ports = [s.port for s in self._states.values() if s.port is not None]
        for port in ports:
            port.close()

    @property
    def alive(self) -> bool:
        """The supervisor thread (it opens, reopens and scans the ports) is running."""
        return self._thread is not None and self._thread.is_alive()

    def figures(self) -> list[dict[str, Any]]:
        with self._lock:
            return [s.figures() for s in self._states.values()]

    def links_up(self) -> int:
        return sum(1 for f in self.figures() if f["up"])

    # --- supervisor ------------------------------------------------------------------------

    def _supervise(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            if self._discover and now - self._last_scan >= self._scan_every:
                self._last_scan = now
                self._scan()
            with self._lock:
                due = [s for s in self._states.values() if s.port is None and s.next_try <= now]
            for state in due:
                if self._stop.is_set():
                    break
                self._open(state)
            if now - self._last_bridge_poll >= self._bridge_poll:
                self._last_bridge_poll = now
                self._poll_bridges(now)
            self._wake.wait(0.05)
            self._wake.clear()

    def _scan(self) -> None:
        try:
            found = discover(self._usb_ids, self._comports)
        except OSError as exc:  # list_ports reads sysfs; never let that stop the supervisor
            log.warning("link discovery failed %s", kv(error=exc))
            return
        with self._lock:
            # a configured /dev/serial/by-id or udev symlink and its discovered /dev/ttyUSBn are one port
            known = {os.path.realpath(p) for p in self._states}
            for path in found:
                if path not in self._states and os.path.realpath(path) not in known:
                    log.info("link discovered %s", kv(port=path))
                    self._states[path] = PortState(path, configured=False)
            # a discovered port that vanished and is closed is forgotten; configured ones stay
            for path in [p for p, s in self._states.items() if not s.configured and s.port is None]:
                if path not in found:
                    del self._states[path]

    def _open(self, state: PortState) -> None:
        if not os.path.exists(state.path):  # unplugged: try again later, quietly
            with self._lock:
                state.failures += 1
                state.last_error = "no such device"
                state.next_try = time.monotonic() + self._backoff(state.failures)
            return
        # The reader thread starts inside open() and may deliver frames before open() returns,
        # so the callback carries the port itself rather than looking it up in the state.
        holder: list[LinkPort] = []
        waiting: list[Item] = []  # UPLINKs of one read, handed to the writer together
        port = self._port_factory(
            state.path,
            hello=self._hello(),
            on_event=lambda event, s=state: self._on_event(s, holder[0], event, waiting),
            on_events_done=lambda: self._submit(waiting),
            baudrate=self._baudrate,
            window=self._window,
            busy=self._busy,
        )
        holder.append(port)
        with self._lock:
            state.port = port
        try:
            port.open()
        except LinkError as exc:
            with self._lock:
                state.port = None
                state.failures += 1
                state.last_error = str(exc)
                state.next_try = time.monotonic() + self._backoff(state.failures)
            if state.failures == 1 or state.failures % 50 == 0:
                log.info("link open failed %s", kv(port=state.path, attempt=state.failures, error=exc))
            port.close()
            return
        with self._lock:
            state.opens += 1
            state.failures = 0
            state.last_error = ""

    def _backoff(self, failures: int) -> float:
        base = min(self._max, self._min * 2 ** min(failures - 1, 20))
        return base * (0.5 + self._rng.random() / 2)

    # --- events (on the port's reader thread) ------------------------------------------------

    def _submit(self, waiting: list[Item]) -> None:
        if waiting:
            self._ingest.submit_many(list(waiting))
            waiting.clear()

    def _on_event(self, state: PortState, port: LinkPort, event: Any, waiting: list[Item]) -> None:
        if isinstance(event, Received):
            self._on_frame(state, port, event.frame, waiting)
        elif isinstance(event, SessionStarted):
            state.peer = dict(event.peer)
            state.up_since = time.monotonic()
            log.info(
                "link up %s",
                kv(
                    port=state.path,
                    peer=event.peer.get("id"),
                    role=event.peer.get("role"),
                    fw=event.peer.get("fw"),
                    board=event.peer.get("board"),
                ),
            )
            self._ingest.submit_call(lambda conn, now, peer=dict(event.peer): _note_peer(conn, peer, now))
            if self._updates is not None:
                self._updates.session_started(dict(event.peer))
            with self._lock:
                self._last_bridge_poll = float("-inf")  # a bridge's waiting commands go now
            self._wake.set()
        elif isinstance(event, Acked):
            if _is_update(event.token):
                self._updates.acked(event.token, event.result)
            else:
                self._on_downlink_acked(port, event.token)
        elif isinstance(event, Refused):
            if _is_update(event.token):
                self._updates.refused(event.token, event.reason.name, event.text)
            else:
                self._on_downlink_refused(event)
        elif isinstance(event, LinkLost):
            log.warning("link lost %s", kv(port=state.path, reason=event.reason))
        elif isinstance(event, PortClosed):
            with self._lock:
                if state.port is not port:
                    return  # a port that failed to open: never counted as open
                for name, value in _port_counters(port).items():
                    state.past[name] = state.past.get(name, 0) + value
                state.port = None
                state.up_since = None
                state.last_error = event.reason
                self._inflight.port_closed(port)  # not ACKed by the bridge: to its next link
                state.next_try = time.monotonic() + (0 if self._stop.is_set() else self._min)
            if event.reason != "closed":
                log.warning("link down %s", kv(port=state.path, reason=event.reason))
            self._wake.set()

    def _on_frame(self, state: PortState, port: LinkPort, frame: Frame, waiting: list[Item]) -> None:
        seq = frame.seq
        bridge = state.peer.get("id")
        if frame.type == FrameType.UPLINK:
            # The ACK is queued for the port's own thread to write (after the commit). refuse: the
            # commit failed and nothing was ACKed; a new session makes the module resend its frames,
            # and while the edge stays unable to store them it answers them BUSY (daemon._busy), so
            # the module backs off instead of restarting sessions.
            waiting.append(
                Item(
                    frame.payload,
                    bridge,
                    reply=lambda ack: port.ack_later(seq, ack),
                    refuse=lambda _reason: port.reconnect_later(),
                    source=port,
                )
            )
        elif frame.type == FrameType.STATUS:
            try:
                status = json.loads(frame.payload)
            except ValueError as exc:
                status, why = None, str(exc)
            else:
                why = "not a JSON object"
            if not isinstance(status, dict):
                port.nack(seq, NackReason.INVALID, f"STATUS: {why}")
                return
            self._ingest.submit_call(
                lambda conn, now: _store_status(conn, bridge, status), reply=lambda: port.ack_later(seq)
            )
        elif frame.type == FrameType.LOG:
            try:
                entry = json.loads(frame.payload)
            except ValueError:
                entry = {"msg": frame.payload.decode("utf-8", "replace")}
            if not isinstance(entry, dict):
                entry = {"msg": str(entry)}
            level = {"debug": logging.DEBUG, "warning": logging.WARNING, "error": logging.ERROR}.get(
                str(entry.get("lvl", "info")).lower(), logging.INFO
            )
            log.log(level, "module log %s", kv(port=state.path, module=bridge, msg=entry.get("msg", "")))
            port.ack(seq)
        else:
            port.nack(seq, NackReason.UNSUPPORTED, f"frame type 0x{frame.type:02x}")

    # --- a bridge's own downlinks (serial DOWNLINK) ------------------------------------------

    def _bridge_links(self) -> dict[str, LinkPort]:
        """The ports whose session is up, by the module id their HELLO gave."""
        with self._lock:
            return {
                s.peer["id"]: s.port
                for s in self._states.values()
                if s.port is not None and s.port.up and isinstance(s.peer.get("id"), str)
            }

    def _poll_bridges(self, mono: float) -> None:
        if self._updates is not None:
            try:
                self._updates.poll(self._bridge_links())
            except Exception:  # a bad update row or package must not stop the supervisor
                log.exception("firmware update poll failed")
        # frames taken before (window full, port gone) go first; a bridge gets new ones after them
        ready = [dev for dev, port in self._bridge_links().items() if self._send_waiting(dev, port)]
        if ready and self._queued is not None:
            try:
                wanted = self._queued(ready)
            except Exception as exc:  # a locked or missing database must not stop the supervisor
                if not self._probe_failing:
                    log.warning("bridge downlink probe failed %s", kv(error=exc))
                self._probe_failing = True
                return
            self._probe_failing = False
            ready = [dev for dev in ready if dev in wanted]
        for device_id in ready:
            self._request_take(device_id, mono)

    def _request_take(self, device_id: str, mono: float) -> None:
        """Ask the writer to mark the bridge's queued downlinks sent; send them after the commit.

        Looks at every connected module: edge.bridge_downlinks.take answers nothing for a
        module not registered as a bridge. One look per bridge at a time.
        """
        with self._lock:
            since = self._taking.get(device_id)
            if since is not None and mono - since < TAKE_STALE_S:
                return
            self._taking[device_id] = mono
        taken: list[bridge_downlinks.BridgeDownlink] = []

        def look(conn, now) -> None:
            taken.extend(bridge_downlinks.take(conn, device_id, now=now))

        def committed() -> None:
            with self._lock:
                self._taking.pop(device_id, None)
                self._inflight.add(taken)
            if taken:
                port = self._bridge_links().get(device_id)
                if port is not None:
                    self._send_waiting(device_id, port)

        self._ingest.submit_call(look, reply=committed)

    def _send_waiting(self, device_id: str, port: LinkPort) -> bool:
        """Hand the bridge's waiting DOWNLINK frames to ``port``; True when none is left waiting."""
        with self._lock:
            for item in self._inflight.waiting(device_id, now=self._clock()):
                # A closed port is checked under the lock: its PortClosed handler (which takes the
                # lock) then runs after this send and puts the frame back to wait.
                if port.closed.is_set() or not port.can_send():
                    return False
                try:
                    port.send(FrameType.DOWNLINK, item.frame, ("downlink", device_id, item.id))
                except OverflowError:
                    return False
                self._inflight.handed(device_id, item.id, port)
                log.info("downlink to bridge %s", kv(port=port.path, device=device_id, downlink=item.id))
            return True

    def _on_downlink_acked(self, port: LinkPort, token: Any) -> None:
        if not (isinstance(token, tuple) and token and token[0] == "downlink"):
            return
        _, device_id, dl_id = token
        with self._lock:
            self._inflight.done(device_id, dl_id)
        # the bridge answers on uplink port 2; meanwhile its window has room for the next one
        self._send_waiting(device_id, port)

    def _on_downlink_refused(self, event: Refused) -> None:
        token = event.token
        if not (isinstance(token, tuple) and token and token[0] == "downlink"):
            return
        _, device_id, dl_id = token
        with self._lock:
            self._inflight.done(device_id, dl_id)
        log.warning(
            "downlink refused by bridge %s",
            kv(device=device_id, downlink=dl_id, reason=event.reason.name, text=event.text),
        )
        self._ingest.submit_call(
            lambda conn, now: bridge_downlinks.refused(
                conn, device_id, dl_id, event.reason.name, event.text, now=now
            )
        )


def _is_update(token: Any) -> bool:
    return isinstance(token, tuple) and bool(token) and token[0] == "update"


def _note_peer(conn, peer: dict[str, Any], now: float) -> None:
    """A registered module that says HELLO: keep its firmware version and board."""
    dev = peer.get("id")
    if isinstance(dev, str):
        conn.execute(
            "UPDATE devices SET firmware = coalesce(?, firmware), board = coalesce(?, board) WHERE id = ?",
            (peer.get("fw"), peer.get("board"), dev),
        )


def _store_status(conn, module_id: str | None, status: dict[str, Any]) -> None:
    if module_id:
        conn.execute("UPDATE devices SET status = ? WHERE id = ?", (json.dumps(status), module_id))
