"""`make demo`: the whole appliance on one machine, with nothing to configure.

    python -m edge.demo [--modules N] [--duration SECONDS] [--panel-port 8080] [--no-cloud] [--db FILE]
    python -m edge.demo --link-only [--modules N] [--every MS] [--duration SECONDS]

By default (the site): N virtual nodes (the real firmware under micropython, radio on UDP
loopback) -> a virtual bridge (UART on a pty) -> the edge daemon -> SQLite, each stored
reading printed live; the web panel on 127.0.0.1 (port 8080, or a free one when 8080 is
taken) with a demo admin whose password is generated and printed once; a local Mosquitto
as the cloud when it is installed, with the readings printed as they reach it; one example
threshold rule, so an alarm is raised and shown.

``--link-only``: N modules running the firmware's link self-test (firmware/linktest.py),
each pty opened with the edge's serial driver exactly as /dev/ttyUSB0 would be, every
HELLO and frame printed as it arrives.

Ctrl-C or SIGTERM (or --duration) stops everything cleanly: ports closed, modules,
broker and panel stopped, no process left behind.
"""

from __future__ import annotations

import argparse
import functools
import logging
import queue
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from edge.codecs import CodecRunner
from edge.errors import FieldpostError
from edge.link.frame import FrameType
from edge.link.port import LinkPort, PortClosed
from edge.link.session import Acked, LinkLost, Received, Refused, SessionStarted
from edge.sim import VirtualModule
from edge.store.decode import decode_payload

EDGE_VERSION = "0.1.0"
DEFAULT_PANEL_PORT = 8080


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m edge.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--link-only",
        action="store_true",
        help="only virtual modules and the serial link: HELLOs and frames, no daemon, panel or cloud",
    )
    parser.add_argument("--site", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument(
        "--modules",
        type=int,
        default=None,
        help="virtual modules to start (default 3 nodes; 2 with --link-only)",
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after SECONDS (default: Ctrl-C)")
    parser.add_argument("--heapsize", default=None, help="micropython heap per module, e.g. 64K")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    parser.add_argument(
        "--every", type=int, default=1000, help="with --link-only: each module sends a frame every MS ms"
    )
    parser.add_argument("--db", default=None, help="SQLite file to use (default: a temporary one)")
    parser.add_argument(
        "--time-scale", type=int, default=10, help="firmware time runs this much faster (default 10)"
    )
    parser.add_argument(
        "--panel-port",
        type=int,
        default=DEFAULT_PANEL_PORT,
        help=f"web panel port on 127.0.0.1 (default {DEFAULT_PANEL_PORT}; a free one if taken; 0: any)",
    )
    parser.add_argument("--no-panel", action="store_true", help="do not serve the web panel")
    parser.add_argument("--no-cloud", action="store_true", help="do not start the local Mosquitto cloud")
    args = parser.parse_args(argv)
    if args.link_only and args.site:
        parser.error("--link-only and --site exclude each other")
    if args.modules is None:
        args.modules = 2 if args.link_only else 3
    if not 1 <= args.modules <= 32:
        parser.error("--modules must be 1..32")
    if args.every < 1:
        parser.error("--every must be at least 1 ms")
    if not 0 <= args.panel_port <= 65535:
        parser.error("--panel-port must be 0..65535")
    if args.time_scale < 1:
        parser.error("--time-scale must be at least 1")
    return args


def module_id(n: int) -> str:
    return f"de70{n:012x}"  # 16 hex digits, as docs/radio.md wants a device id


def describe(name: str, event) -> str | None:
    """One line for the console, or None for events not worth a line."""
    if isinstance(event, SessionStarted):
        p = event.peer
        return (
            f"[{name}] HELLO  id={p.get('id')} role={p.get('role')} fw={p.get('fw')} board={p.get('board')} "
            f"window={p.get('win')} isn={p.get('isn')}"
        )
    if isinstance(event, Received):
        f = event.frame
        kind = FrameType(f.type).name if f.type in FrameType._value2member_map_ else f"0x{f.type:02x}"
        body = f.payload.hex() if f.type == FrameType.UPLINK else f.payload.decode("utf-8", "replace")
        if f.type == FrameType.UPLINK and len(f.payload) >= 4:
            return f"[{name}] {kind:<6} #{int.from_bytes(f.payload[:4], 'big'):<6} seq={f.seq:<5} {body}"
        return f"[{name}] {kind:<6} seq={f.seq:<5} {body}"
    if isinstance(event, LinkLost):
        return f"[{name}] link lost: {event.reason}"
    if isinstance(event, Refused):
        return f"[{name}] refused: {event.reason.name} {event.text}"
    if isinstance(event, PortClosed):
        return f"[{name}] port closed: {event.reason}"
    if isinstance(event, Acked):
        return None
    return None


def run(args: argparse.Namespace, out: TextIO = sys.stdout, stop: threading.Event | None = None) -> int:
    stop = stop or threading.Event()
    events: queue.Queue = queue.Queue()
    modules: list[VirtualModule] = []
    ports: dict[str, LinkPort] = {}

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        for n in range(1, args.modules + 1):
            name = f"module-{n}"
            vm = VirtualModule(
                "linktest.py",
                ["--id", module_id(n), "--every", str(args.every)],
                heapsize=args.heapsize,
                name=name,
                on_output=functools.partial(_firmware_line, say, name),
            )
            modules.append(vm.start())
            say(f"[{name}] started: micropython pid {vm.pid}, UART on {vm.port}")
        for vm in modules:
            ref: list[LinkPort] = []

            def on_event(event, name=vm.name, ref=ref) -> None:
                if isinstance(event, Received):
                    ref[0].ack(event.frame.seq)  # the demo stores nothing: ACK at once
                events.put((name, event))

            assert vm.port is not None  # start() made it
            port = LinkPort(
                vm.port, hello={"edge": EDGE_VERSION, "time": int(time.time())}, on_event=on_event
            )
            ref.append(port)
            ports[vm.name] = port.open()
            say(f"[{vm.name}] edge opened {vm.port} at {port.baudrate} baud, sent HELLO")
        deadline = None if args.duration is None else time.monotonic() + args.duration
        frames = 0
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                name, event = events.get(timeout=0.1)
            except queue.Empty:
                continue
            frames += isinstance(event, Received)
            line = describe(name, event)
            if line:
                say(line)
        say(f"stopping: {frames} frames received")
        return 0
    finally:
        for port in ports.values():
            port.close()
        for vm in modules:
            vm.close()
        for name, port in ports.items():
            c = port.counters
            say(
                f"[{name}] rx={c.frames_rx} tx={c.frames_tx} retransmits={c.retransmits} rejected={c.frame_errors}"
            )


# --- the site (issues 4, 5, 6, 8): nodes -> bridge -> edge daemon -> SQLite, panel, cloud, a rule ------

PANEL_HOST = "127.0.0.1"  # the demo is for this machine; a real site sets [webui] host for its LAN
DEMO_SITE = "demo"
DEMO_ADMIN = "admin"
# Where each node starts in its simulated day. The unix HAL's climate (firmware/fp/hal/unix.py) is
# 18 + 6 sin(2 pi phase) °C, so node 1 starts at 24 °C, node 2 at 18 °C, node 3 at 12 °C: one warm
# node for DEMO_RULE to alarm on, and the others quiet.
NODE_PHASES = (0.25, 0.0, 0.75, 0.5)
DEMO_RULE = {
    "name": "demo warm",
    "kind": "threshold",
    "metric": "temperature",
    "above": 22.0,
    "hysteresis": 0.5,
    "for_s": 0,
    "severity": "warning",
    "message": "temperature $value °C on $device is above $limit °C",
}


def _free_udp_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def node_seed(n: int) -> int:
    """Node n's firmware seed: its jitter, and (seed % 1000 / 1000) its phase in the simulated day."""
    return 1000 * n + int(NODE_PHASES[(n - 1) % len(NODE_PHASES)] * 1000)


# EU868 allows each module 1 % of every hour on air (36 s). At SF7 a node's reading (24 bytes of
# LoRaWAN) is 62 ms on air and the bridge's acknowledgement (12 bytes) 41 ms: the bridge answers
# every node, so its budget is the one that runs out first. Half of it for the acknowledgements (the
# rest for resends, join accepts and commands) gives 18 s / 41 ms = 437 an hour, shared by the
# nodes: a reading every 8.2 s x nodes. The demo keeps the 10.4 s x nodes of Fieldpost v1's larger
# frames (29 and 18 bytes), a margin more.
# Shorter, and the bridge runs out of airtime, acknowledgements miss their window, the nodes resend
# and their own budget goes (before issue 13 the demo stalled for ~5 minutes after ~20 readings).
DEMO_MIN_INTERVAL_S = 30


def demo_interval(nodes: int) -> int:
    """Seconds of module time between a demo node's readings, within the bridge's duty cycle."""
    return max(DEMO_MIN_INTERVAL_S, -(-nodes * 104 // 10))


def _module_config(
    dev_id: str,
    key: bytes,
    role: str,
    port: int,
    peers: list[int],
    time_scale: int,
    seed: int,
    nodes: int = 1,
) -> dict:
    # The firmware's config.json (firmware/fp/config.py): SF7, readings spaced for the duty cycle.
    return {
        "id": dev_id,
        "key": key.hex(),
        "role": role,
        "dr": 5,
        "interval": demo_interval(nodes) if role == "node" else 60,
        "time_scale": time_scale,
        "rx_window": 3,
        "retry_base": 1,
        "retry_max": 8,
        "status_every": 60 if role == "bridge" else 3600,
        "seed": seed,
        "air": {"port": port, "peers": peers, "rssi": -97, "snr": 6.5, "seed": port + 1},
    }


def describe_reading(reading, codecs: CodecRunner) -> str:
    """One console line for a committed reading (edge.ingest.CommittedReading), decoded here."""
    decoded, error = decode_payload(codecs, reading.codec, reading.port, reading.raw)
    values = "  ".join(
        f"{v['name']} {v['value']}{(' ' + v['unit']) if v['unit'] else ''}" for v in decoded or ()
    ) or (error or reading.raw.hex())
    kind = {1: "reading", 2: "dl-result", 3: "status"}.get(reading.port, f"port {reading.port}")
    return (
        f"[{reading.device_id}] #{reading.fcnt:<5} {kind:<9} {values}   "
        f"(rssi {reading.rssi} dBm, snr {reading.snr} dB, via {reading.bridge_id})"
    )


class AlarmPrinter:
    """An edge.alarms.AlarmListener that prints each alarm state change."""

    def __init__(self, say):
        self._say = say

    def alarm_raised(self, alarm) -> None:
        self._say(f"[alarm] RAISED {alarm.severity} '{alarm.rule}' on {alarm.device_id}: {alarm.message}")

    def alarm_acknowledged(self, alarm) -> None:
        self._say(f"[alarm] acknowledged by {alarm.acknowledged_by}: '{alarm.rule}' on {alarm.device_id}")

    def alarm_cleared(self, alarm) -> None:
        self._say(f"[alarm] cleared '{alarm.rule}' on {alarm.device_id}")


def ensure_demo_admin(conn, *, now: float) -> str:
    """Create (or, in a reused database, reset) the demo admin with a fresh random password.

    Returns the password, which exists nowhere else: the demo prints it once. Audited like
    `fieldpost users add` / `set-password`.
    """
    from edge.store import transaction
    from webui import accounts, audit

    password = secrets.token_urlsafe(12)  # 16 characters, above accounts.MIN_PASSWORD_LEN
    with transaction(conn):
        user = accounts.find_user(conn, DEMO_ADMIN)
        if user is None:
            accounts.create_user(conn, DEMO_ADMIN, password, "admin", now=now)
            action = "user.create"
        else:
            conn.execute(
                "UPDATE users SET password_hash = ?, role = 'admin', disabled = 0, failed_logins = 0,"
                " locked_until = NULL WHERE id = ?",
                (accounts.hash_password(password), user["id"]),
            )
            action = "user.update"
        audit.record(conn, actor="demo", action=action, target=DEMO_ADMIN, detail={"role": "admin"}, now=now)
    return password


def panel_port(preferred: int, host: str = PANEL_HOST) -> int:
    """``preferred`` when it can be bound now, else 0 (the panel then takes any free port)."""
    if preferred == 0:
        return 0
    with socket.socket() as sock:
        # As the panel's server does: a port left in TIME_WAIT by an earlier run is free, a listening one is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, preferred))
        except OSError:
            return 0
    return preferred


def _firmware_line(say: Callable[[str], None], name: str, line: str) -> None:
    say(f"[{name}] (firmware) {line}")


def site_config(
    db_path, bridge_port: str, *, panel_port: int | None, sync: dict | None, verbose: bool
) -> dict:
    """The demo's fieldpost.toml, as a dict for edge.config.from_dict."""
    cfg = {
        "edge": {"db": str(db_path), "site": DEMO_SITE},
        "link": {"ports": [bridge_port], "discover": False},
        "http": {"host": "127.0.0.1", "port": 0},
        "log": {"level": "DEBUG" if verbose else "WARNING"},
        "rules": [DEMO_RULE],
        "gpio": {"enabled": False},  # no LEDs or buzzer to drive on a development machine
        "webui": {"enabled": panel_port is not None, "host": PANEL_HOST, "port": panel_port or 0},
    }
    if sync is not None:
        cfg["sync"] = sync
    return cfg


def run_site(args: argparse.Namespace, out: TextIO = sys.stdout, stop: threading.Event | None = None) -> int:
    import json
    import tempfile
    from pathlib import Path

    from edge import config as config_mod
    from edge import registry
    from edge.alarms import AlarmFeed, open_alarms
    from edge.daemon import ATTACH_POINTS, Daemon
    from edge.store import connect, migrate
    from edge.sync.demo_cloud import DemoCloud

    stop = stop or threading.Event()
    lock = threading.Lock()
    modules: list[VirtualModule] = []
    daemon = None
    cloud = None
    feed_conn = None
    codecs = CodecRunner()  # the console decodes what it prints (the store keeps raw payloads)

    def say(line: str) -> None:
        with lock:  # readings, the cloud and alarms print from their own threads
            print(line, file=out, flush=True)

    with tempfile.TemporaryDirectory(prefix="fieldpost-demo-") as tmp:
        work = Path(tmp)
        db_path = Path(args.db) if args.db else work / "fieldpost.db"
        try:
            if not args.no_cloud:
                cloud = DemoCloud(work / "cloud", out=say).start()  # None (and a note) without mosquitto
            conn = connect(db_path)
            try:
                migrate(conn)
                bridge_id = module_id(0xB0)
                node_ids = [module_id(0xA0 + n) for n in range(1, args.modules + 1)]
                keys = {
                    dev: registry.add_device(
                        conn,
                        dev,
                        role="bridge" if dev == bridge_id else "node",
                        name=f"demo {'bridge' if dev == bridge_id else 'node'}",
                        actor="demo",
                        now=time.time(),
                    )
                    for dev in [bridge_id, *node_ids]
                }
                password = None if args.no_panel else ensure_demo_admin(conn, now=time.time())
            finally:
                conn.close()
            bridge_port, *node_ports = _free_udp_ports(1 + len(node_ids))
            dirs = {}
            for n, (dev, port, peers) in enumerate(
                [
                    (bridge_id, bridge_port, node_ports),
                    *[(d, p, [bridge_port]) for d, p in zip(node_ids, node_ports, strict=True)],
                ]
            ):
                d = work / dev
                d.mkdir()
                role = "bridge" if dev == bridge_id else "node"
                seed = node_seed(n) if n else port
                (d / "config.json").write_text(
                    json.dumps(
                        _module_config(
                            dev, keys[dev], role, port, peers, args.time_scale, seed, len(node_ids)
                        )
                    )
                )
                dirs[dev] = d
            bridge = VirtualModule(
                "main.py", ["config.json"], cwd=dirs[bridge_id], name="bridge", heapsize=args.heapsize
            )
            modules.append(bridge.start())
            say(f"[bridge {bridge_id}] started: micropython pid {bridge.pid}, UART on {bridge.port}")
            assert bridge.port is not None  # start() made it
            cfg = config_mod.from_dict(
                site_config(
                    db_path,
                    bridge.port,
                    panel_port=None if args.no_panel else panel_port(args.panel_port),
                    sync=cloud.sync_section(DEMO_SITE) if cloud is not None else None,
                    verbose=args.verbose,
                )
            )
            # The panel is attached below rather than by the daemon, to learn the port it got.
            daemon = Daemon(cfg, attach_points=tuple(p for p in ATTACH_POINTS if p != "webui.service:attach"))

            def show(readings: list) -> None:
                for r in readings:
                    say(describe_reading(r, codecs))

            daemon.add_hook(show)
            daemon.start()
            say(f"[edge] database {db_path}")
            if daemon.http is not None:
                say(
                    f"[edge] health http://{daemon.http.host}:{daemon.http.port}/health, "
                    f"metrics http://{daemon.http.host}:{daemon.http.port}/metrics"
                )
            say(
                f"[edge] rule '{DEMO_RULE['name']}': a {DEMO_RULE['severity']} alarm while temperature > "
                f"{DEMO_RULE['above']} °C (node {node_ids[0]} starts warm)"
            )
            if not args.no_panel:
                from webui.service import attach as attach_panel

                panel = attach_panel(daemon)
                if panel is None:
                    say("[panel] not started (see the log on stderr)")
                else:
                    say(f"[panel] {panel.scheme}://{PANEL_HOST}:{panel.port}/")
                    say(
                        f"[panel] log in as {DEMO_ADMIN}, password {password}  (made for this run, shown once)"
                    )
            feed_conn = connect(db_path)
            feed = AlarmFeed(feed_conn, [AlarmPrinter(say)])
            for dev in node_ids:
                vm = VirtualModule(
                    "main.py", ["config.json"], cwd=dirs[dev], name=f"node-{dev[-2:]}", heapsize=args.heapsize
                )
                modules.append(vm.start())
                say(f"[node {dev}] started: micropython pid {vm.pid}")
            deadline = None if args.duration is None else time.monotonic() + args.duration
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                feed.poll()
                stop.wait(0.2)
            feed.poll()
            assert daemon.ingest is not None and daemon.manager is not None  # start() made them
            stats = daemon.ingest.stats
            say(
                f"stopping: {stats.results['stored']} readings stored, {stats.batches} commits, "
                f"links up {daemon.manager.links_up()}, open alarms {len(open_alarms(feed_conn))}"
            )
            return 0
        finally:
            if feed_conn is not None:
                feed_conn.close()
            if daemon is not None:
                daemon.stop()  # commits and ACKs what it holds, stops sync and the panel
            for vm in modules:
                vm.close()
            codecs.close()
            if cloud is not None:
                cloud.stop()
                say(f"stopped: the cloud received {cloud.received} message(s)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if args.link_only:
            print("Fieldpost demo: virtual modules -> serial link -> edge. Ctrl-C stops.", flush=True)
            return run(args, stop=stop)
        print(
            "Fieldpost demo: virtual nodes -> radio -> bridge -> serial link -> edge -> SQLite, "
            "web panel, cloud sync, rules. Ctrl-C stops.",
            flush=True,
        )
        return run_site(args, stop=stop)
    except FieldpostError as exc:  # no micropython, a bad option value...: one line, not a traceback
        print(f"demo: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
