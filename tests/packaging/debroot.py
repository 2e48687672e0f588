"""Fresh Debian systems for the package tests: a root made by mmdebstrap, used three ways.

- ``DebRoot``: dpkg and the maintainer scripts run under chroot, no systemd running (an image
  build, a Pi's first boot).
- ``DebRoot.start_like_unit``: ``fieldpost run`` as the unit would start it: its user, groups,
  command line and umask, everything read-only but /var/lib/fieldpost (ProtectSystem=strict),
  a private /tmp; the test's own NOTIFY_SOCKET.
- ``Booted``: the root booted with systemd-nspawn, where systemd itself starts the service.

Nothing here touches the host's own files: every mount lives in a private mount namespace
(unshare) and disappears with the process that made it.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from edge.store import connect

SUITE = "bookworm"
HOST_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# The base system has what a Raspberry Pi OS Lite install has that matters here: systemd as init.
BOOT_PACKAGES = ("systemd", "systemd-sysv", "dbus")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INSTALLED_DB = Path("/var/lib/fieldpost/fieldpost.db")
CONFIG = Path("/etc/fieldpost/fieldpost.toml")
UNIT = Path("/lib/systemd/system/fieldpost.service")


def once(shared: Path, name: str, make: Callable[[Path], None]) -> Path:
    """``shared/name`` made by ``make(path)`` exactly once, whichever pytest-xdist worker asks first."""
    target = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / f"{name}.done").exists():
            shutil.rmtree(target, ignore_errors=True)
            make(target)
            (shared / f"{name}.done").touch()
    return target


def depends_of(deb: Path) -> list[str]:
    """The package names the .deb depends on (first of each alternative)."""
    field = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True
    )
    names = [part.split("|")[0].split("(")[0].strip() for part in field.stdout.split(",")]
    return [n for n in names if n]


def make_base_root(dest: Path, packages: Sequence[str]) -> None:
    """A minimal Debian bookworm with ``packages``, from the Debian archive (apt's usual sources)."""
    mirror = [str(HOST_SOURCES)] if HOST_SOURCES.exists() else []
    cmd = ["mmdebstrap", "--variant=minbase", "--quiet", f"--include={','.join(packages)}", SUITE, str(dest)]
    result = subprocess.run(cmd + mirror, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"mmdebstrap failed:\n{result.stdout}\n{result.stderr}")


def stored_readings(db_path: Path) -> set[tuple[str, int]]:
    """(device, frame counter) of every reading in a database: the one place that knows the schema."""
    conn = connect(db_path, readonly=True)
    try:
        # reading_list: the store's view with device ids and frame counters spelled out (edge/store)
        return {(row[0], row[1]) for row in conn.execute("SELECT device_id, fcnt FROM reading_list")}
    finally:
        conn.close()


def unit_settings(text: str) -> dict[str, list[str]]:
    """The [Service] section of a unit: each key with every value it was given, in order."""
    values: dict[str, list[str]] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        if section == "Service":
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DebRoot:
    def __init__(self, path: Path):
        self.path = Path(path)

    def __truediv__(self, inside: str | Path) -> Path:
        """The host path of ``inside`` (absolute inside the root)."""
        return self.path / Path(inside).relative_to("/")

    # --- running things inside ---------------------------------------------------------------

    def run(
        self,
        *argv: str,
        check: bool = True,
        user: str | None = None,
        read_only: Sequence[str] = (),
        timeout=300,
    ):
        """``argv`` under chroot, in a private mount namespace with /proc (and as ``user``);
        ``read_only``: folders inside the root mounted read-only meanwhile."""
        userspec = ["--userspec", f"{user}:{user}"] if user else []
        mounts = "".join(
            f"mount --bind {p} {p} && mount -o remount,bind,ro {p} && "
            for p in (shlex.quote(str(self / inside)) for inside in read_only)
        )
        script = (
            mounts + f"mount -t proc proc {shlex.quote(str(self / '/proc'))} && "
            f"exec chroot {' '.join(userspec)} {shlex.quote(str(self.path))} "
            + " ".join(shlex.quote(a) for a in ["/usr/bin/env", "-i", f"PATH={PATH}", "LANG=C.UTF-8", *argv])
        )
        result = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": PATH, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def dpkg(self, *args: str | Path, check: bool = True, read_only: Sequence[str] = ()):
        """dpkg inside the root; .deb paths on the host are copied in first."""
        inside = []
        for arg in args:
            if str(arg).endswith(".deb"):
                shutil.copy2(arg, self / f"/root/{Path(arg).name}")
                arg = f"/root/{Path(arg).name}"
            inside.append(str(arg))
        return self.run("dpkg", *inside, check=check, read_only=read_only)

    # --- what is there ----------------------------------------------------------------------

    def owner_mode(self, inside: str | Path) -> tuple[str, str, int]:
        """(owner, group, mode) of a path, with names from the root's own passwd and group."""
        st = (self / inside).lstat()
        users = {int(f[2]): f[0] for f in self._entries("/etc/passwd")}
        groups = {int(f[2]): f[0] for f in self._entries("/etc/group")}
        return (
            users.get(st.st_uid, str(st.st_uid)),
            groups.get(st.st_gid, str(st.st_gid)),
            st.st_mode & 0o7777,
        )

    def gid(self, group: str) -> int:
        return next(int(f[2]) for f in self._entries("/etc/group") if f[0] == group)

    def groups_of(self, user: str) -> set[str]:
        return {f[0] for f in self._entries("/etc/group") if user in f[3].split(",")}

    def _entries(self, inside: str) -> list[list[str]]:
        return [line.split(":") for line in (self / inside).read_text().splitlines() if line.count(":") >= 3]

    def edit_config(self, edit: Callable[[str], str]) -> None:
        """Change the configuration as an administrator would, keeping its owner and mode."""
        path = self / CONFIG
        st = path.stat()
        path.write_text(edit(path.read_text()))
        os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, st.st_mode & 0o7777)

    def set_config_value(self, section: str, key: str, value: str) -> None:
        def edit(text: str) -> str:
            lines = text.splitlines()
            if f"[{section}]" not in lines:
                lines += ["", f"[{section}]"]
            start = lines.index(f"[{section}]")
            for i in range(start + 1, len(lines)):
                if lines[i].startswith("["):
                    break
                if lines[i].split("=")[0].strip() == key:
                    lines[i] = f"{key} = {value}"
                    return "\n".join(lines) + "\n"
            lines.insert(start + 1, f"{key} = {value}")
            return "\n".join(lines) + "\n"

        self.edit_config(edit)

    # --- the service as its unit starts it -----------------------------------------------------

    def start_like_unit(self, env: dict[str, str], *, stdout=subprocess.PIPE) -> subprocess.Popen:
        """ExecStart= of the installed unit with its User=, Group=, SupplementaryGroups=, UMask= and
        Environment=, ProtectSystem=strict with ReadWritePaths=, PrivateTmp=; ``env`` on top."""
        unit = unit_settings((self / UNIT).read_text())
        user, group = unit["User"][-1], unit["Group"][-1]
        groups = ",".join(" ".join(unit.get("SupplementaryGroups", [])).split())
        environment = dict(kv.split("=", 1) for v in unit.get("Environment", []) for kv in shlex.split(v))
        writable = " ".join(unit.get("ReadWritePaths", [])).split()
        assert unit["ProtectSystem"] == ["strict"] and unit["PrivateTmp"] == ["yes"]
        root = shlex.quote(str(self.path))
        mounts = [f"mount --bind {root} {root}"]  # a mount of its own, to be made read-only below
        for path in writable:
            inside = shlex.quote(str(self / path))
            mounts.append(f"mount --bind {inside} {inside}")
        mounts += [
            f"mount -t proc proc {root}/proc",
            f"mount -t tmpfs tmpfs {root}/tmp",  # PrivateTmp=
            f"mount -t tmpfs tmpfs {root}/dev/shm",
            f"mount --bind /dev/pts {root}/dev/pts",  # the test's ptys stand in for USB serial ports
            f"mount -o remount,bind,ro {root}",  # ProtectSystem=strict: the rest is read-only
        ]
        command = [
            "/usr/bin/env",
            "-i",
            f"PATH={PATH}",
            *(f"{k}={v}" for k, v in {**environment, **env}.items()),
        ]
        command += ["/bin/sh", "-c", f'umask {unit.get("UMask", ["0022"])[-1]} && exec "$@"', "sh"]
        command += shlex.split(unit["ExecStart"][-1])
        script = " && ".join(mounts) + (
            f" && exec chroot --userspec={user}:{group} --groups={groups} {root} "
            + " ".join(shlex.quote(c) for c in command)
        )
        return subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            text=True,
            env={"PATH": PATH},
        )


class Booted:
    """The root booted with systemd-nspawn (its own network: no host port is taken); commands run
    inside through nsenter. ``binds``: host path -> path inside, e.g. a pty as a serial port."""

    def __init__(self, root: DebRoot, binds: dict[str, str] | None = None):
        self.root = root
        self.machine = f"fp-{uuid.uuid4().hex[:8]}"
        self.binds = binds or {}
        self.proc: subprocess.Popen | None = None
        self.init_pid: int | None = None
        self.log = root.path.parent / f"{self.machine}.log"

    def __enter__(self) -> Booted:
        cmd = ["systemd-nspawn", "-D", str(self.root.path), "--machine", self.machine, "--register=no"]
        cmd += ["--keep-unit", "--private-network", "--boot", "--console=pipe"]
        cmd += [f"--bind={src}:{dst}" for src, dst in self.binds.items()]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=open(self.log, "w"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while self.init_pid is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"systemd-nspawn did not boot:\n{self.log.read_text()}")
            self.init_pid = self._container_init()
            time.sleep(0.1)
        while True:  # systemd takes a moment to open its socket; --wait then waits for the boot
            state = self.run("systemctl", "is-system-running", "--wait", check=False, timeout=90)
            if "Failed to connect to bus" not in state.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert state.stdout.strip() in ("running", "degraded"), (
            f"the container's systemd is {state.stdout.strip()!r} {state.stderr}:\n{self.journal()}"
        )
        return self

    def _container_init(self) -> int | None:
        """The container's PID 1: nspawn's child that is pid 1 in its own namespace and runs systemd
        (nspawn starts short-lived helpers too)."""
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        for pid in children.split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if nspid[-1:] == ["1"] and comm == "systemd":
                return int(pid)
        return None

    def run(self, *argv: str, check: bool = True, timeout: float = 120):
        result = subprocess.run(
            ["nsenter", "--target", str(self.init_pid), "--all", "/usr/bin/env", "-i", f"PATH={PATH}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={"PATH": PATH, "DEBIAN_FRONTEND": "noninteractive"},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def show(self, *properties: str) -> dict[str, str]:
        out = self.run("systemctl", "show", "fieldpost", *(f"--property={p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, *args: str) -> str:
        return self.run("journalctl", "--no-pager", "-o", "cat", *args, check=False).stdout

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to shut down
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(Path("/run/systemd/nspawn/propagate") / self.machine, ignore_errors=True)
