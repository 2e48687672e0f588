"""`python -m edge.demo` (what `make demo` runs).

The default, the whole site: panel answering and accepting the printed password, readings stored,
readings and an alarm reaching the local Mosquitto, nothing left running afterwards. And
`--link-only`: HELLOs and frames shown, stops cleanly on --duration and on SIGTERM.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.firmware

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pids_in(output: str) -> list[int]:
    return [int(p) for p in re.findall(r"micropython pid (\d+)", output)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill 0: look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_demo_runs_for_a_duration_and_cleans_up():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge.demo",
            "--link-only",
            "--modules",
            "2",
            "--every",
            "100",
            "--duration",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert len(re.findall(r"HELLO +id=de70", out)) == 2
    assert "role=linktest" in out and "board=unix" in out
    assert re.search(r"\[module-1\] UPLINK +#0 ", out) and re.search(r"\[module-2\] UPLINK +#0 ", out)
    assert "stopping:" in out
    pids = pids_in(out)
    assert len(pids) == 2 and not any(alive(p) for p in pids)


def test_demo_stops_on_sigterm(wait_until):
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.demo", "--link-only", "--modules", "1", "--every", "50"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "UPLINK" in line:
                break
        assert any("UPLINK" in line for line in lines), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    out = "".join(lines) + rest
    assert proc.returncode == 0
    assert "stopping:" in out
    assert not any(alive(p) for p in pids_in(out))


# --- the default: the whole site -----------------------------------------------------------------

MOSQUITTO_PRESENT = bool(shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto"))


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children, ...), from /proc."""
    parent_of = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    # the command name (2nd field) may hold spaces: split after its closing parenthesis
                    parent_of[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parent_of.items() if parent in frontier} - found
        found |= frontier
    return found


def command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return ""


def log_in(base_url: str, username: str, password: str) -> str:
    """Log in through the panel's form (CSRF token and cookie included); the URL it lands on."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(base_url + "login", timeout=10) as resp:
        page = resp.read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"csrf_token": token, "username": username, "password": password})
    with opener.open(base_url + "login", data=form.encode(), timeout=10) as resp:
        assert resp.status == 200
        return resp.url


def test_site_demo_serves_panel_stores_syncs_and_leaves_nothing_running(tmp_path, wait_until):
    db = tmp_path / "demo.db"
    lines: list[str] = []
    with open(tmp_path / "stderr.txt", "w") as err:
        # --panel-port 0: the test must not depend on 8080 being free; make demo uses 8080.
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.demo", "--duration", "12", "--db", str(db), "--panel-port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    children: dict[int, str] = {}  # pid -> command line, while the demo runs
    try:
        url_line = wait_until(
            lambda: next((line for line in list(lines) if line.startswith("[panel] http")), None),
            timeout=30,
            what="the panel URL",
        )
        base_url = url_line.split()[1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", base_url)
        with urllib.request.urlopen(base_url + "login", timeout=10) as resp:
            assert resp.status == 200 and "password" in resp.read().decode().lower()
        user, password = re.search(
            r"^\[panel\] log in as (\S+), password (\S+) ", "".join(lines), re.M
        ).groups()
        assert urllib.parse.urlparse(log_in(base_url, user, password)).path == "/"  # not back at /login
        if MOSQUITTO_PRESENT:
            wait_until(lambda: any(line.startswith("cloud <- ") for line in list(lines)), timeout=20)
        children = {pid: command_of(pid) for pid in descendants(proc.pid)}
        proc.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines)
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()
    commands = list(children.values())
    assert sum("micropython" in c for c in commands) == 4, commands  # the bridge and 3 nodes
    # Afterwards: not one of them is left (zombies already count as gone).
    assert not [pid for pid in children if alive(pid)]

    stored = int(re.search(r"^stopping: (\d+) readings stored", out, re.M).group(1))
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] >= stored > 0
        alarm = conn.execute("SELECT rule, device_id, state FROM alarms").fetchall()
        assert alarm == [("demo warm", "de700000000000a1", "raised")]  # the warm node, and only it
        # readings the cloud acknowledged: at or below the sync cursor of their device
        synced = conn.execute(
            "SELECT count(*) FROM readings AS r JOIN sync_cursor AS c"
            " ON c.device = r.id >> 32 AND r.id <= c.synced_to WHERE r.port IN (1, 3)"
        ).fetchone()[0]
    finally:
        conn.close()
    assert "[alarm] RAISED warning 'demo warm' on de700000000000a1" in out
    if MOSQUITTO_PRESENT:
        # the cursor moves only when the broker has acknowledged (QoS 1); the demo's subscriber saw them
        assert synced > 0
        received = int(re.search(r"^stopped: the cloud received (\d+) message\(s\)", out, re.M).group(1))
        assert received >= synced
        assert re.search(
            r"^cloud <- de700000000000a1: \d+ message\(s\), \d+ bytes: .*alarm:1:raised", out, re.M
        )
        assert any("mosquitto" in c for c in commands)
    else:
        assert "mosquitto is not installed" in out and synced == 0


def test_site_demo_stops_cleanly_on_ctrl_c(tmp_path, wait_until):
    db = tmp_path / "demo.db"
    lines: list[str] = []
    # Its own session, so that the signal below reaches the whole group, as Ctrl-C in a terminal does.
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.demo", "--db", str(db), "--panel-port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        ready = "cloud <- " if MOSQUITTO_PRESENT else "[de70"  # running end to end
        wait_until(lambda: any(line.startswith(ready) for line in list(lines)), timeout=30, what=ready)
        children = descendants(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "stopping:" in out
    assert children and not [pid for pid in children if alive(pid)]
    conn = sqlite3.connect(db)
    try:
        # readings stored, and those the cloud acknowledged (at or below their device's sync cursor)
        total = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        synced = conn.execute(
            "SELECT count(*) FROM readings AS r JOIN sync_cursor AS c ON c.device = r.id >> 32"
            " AND r.id <= c.synced_to"
        ).fetchone()[0]
    finally:
        conn.close()
    assert total > 0
    if MOSQUITTO_PRESENT:
        # The broker is not in the signalled group: the demo stops it itself, after the edge.
        assert synced > 0 and re.search(r"^stopped: the cloud received \d+ message\(s\)", out, re.M)


def test_panel_port_is_8080_unless_taken_then_any_free_one():
    from edge.demo import panel_port

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        assert panel_port(taken) == 0  # 0: the server picks a free port, and the demo prints it
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert panel_port(free) == free


def test_demo_admin_gets_a_new_password_every_run(tmp_path):
    from edge.demo import DEMO_ADMIN, ensure_demo_admin
    from edge.store import connect, migrate
    from webui import accounts

    conn = connect(tmp_path / "demo.db")
    try:
        migrate(conn)
        first = ensure_demo_admin(conn, now=1.0)
        second = ensure_demo_admin(conn, now=2.0)  # a reused --db: the old password stops working
        user = accounts.find_user(conn, DEMO_ADMIN)
        assert first != second and len(second) >= accounts.MIN_PASSWORD_LEN
        assert user["role"] == "admin" and accounts.verify_password(user["password_hash"], second)
        assert not accounts.verify_password(user["password_hash"], first)
        actions = [
            r[0] for r in conn.execute("SELECT action FROM audit_log WHERE actor = 'demo' ORDER BY id")
        ]
        assert actions == ["user.create", "user.update"]
    finally:
        conn.close()
