"""The .deb installed into a fresh Debian root by dpkg, maintainer scripts under chroot (no systemd
running, as in an image build): the account, owners and modes, the unit enabled, and the installed
`fieldpost run` started as its unit starts it: READY, a pty link, a stored reading, /health,
watchdog pings, STOPPING on SIGTERM."""

from __future__ import annotations

import os
import time

from daemon_run import BRIDGE, NODE, WATCHDOG_USEC, InstalledDaemon
from debroot import CONFIG, INSTALLED_DB, UNIT, stored_readings

from edge.store import MIGRATIONS, applied_migrations, connect

# what the service needs to read, what it owns, and what nobody else may read
OWNERS_AND_MODES = {
    "/etc/fieldpost": ("root", "fieldpost", 0o750),
    str(CONFIG): ("root", "fieldpost", 0o640),
    "/etc/fieldpost/tls": ("root", "fieldpost", 0o750),
    "/etc/fieldpost/tls/panel.key": ("root", "fieldpost", 0o640),
    "/etc/fieldpost/tls/panel.crt": ("root", "fieldpost", 0o644),
    "/var/lib/fieldpost": ("fieldpost", "fieldpost", 0o750),
    str(INSTALLED_DB): ("fieldpost", "fieldpost", 0o640),
    "/usr/bin/fieldpost": ("root", "root", 0o755),
    str(UNIT): ("root", "root", 0o644),
    "/lib/udev/rules.d/99-fieldpost.rules": ("root", "root", 0o644),
}


def test_install_sets_up_account_files_database_and_enables_the_unit(root, deb):
    result = root.dpkg("-i", deb)
    out = result.stdout + result.stderr
    assert "created system user fieldpost" in out and "applied" in out  # the postinst says what it did

    user = next(
        line.split(":")
        for line in (root / "/etc/passwd").read_text().splitlines()
        if line.startswith("fieldpost:")
    )
    assert int(user[2]) < 1000 and user[5] == "/var/lib/fieldpost" and user[6] == "/usr/sbin/nologin"
    assert {"dialout", "gpio"} <= root.groups_of("fieldpost")
    assert {path: root.owner_mode(path) for path in OWNERS_AND_MODES} == OWNERS_AND_MODES

    conn = connect(root / INSTALLED_DB, readonly=True)
    try:
        assert applied_migrations(conn) == sorted(name for name, _ in MIGRATIONS)
    finally:
        conn.close()
    wants = root / "/etc/systemd/system/multi-user.target.wants/fieldpost.service"
    assert os.readlink(wants) == str(UNIT)  # enabled, so it starts at the next boot
    conffiles = root.run("dpkg-query", "--showformat=${Conffiles}", "--show", "fieldpost").stdout
    assert str(CONFIG) in conffiles
    # byte-code made by the postinst (the service could not write it under ProtectSystem=strict)
    assert list((root / "/usr/lib/fieldpost/lib/python3.11/site-packages/edge").glob("__pycache__/cli.*.pyc"))


def test_installed_daemon_runs_as_its_unit_stores_a_reading_and_talks_to_systemd(installed):
    with InstalledDaemon(installed) as daemon:
        ready = daemon.ready()
        health = daemon.health()  # up by the time READY=1 is sent
        assert health["status"] == "ok" and health["writer"] == "running"
        fcnt = daemon.store_reading()
        assert (NODE, fcnt) in stored_readings(installed / INSTALLED_DB)
        health = daemon.health()
        assert health["links_up"] == 1 and health["ports"][0]["peer"] == BRIDGE
        time.sleep(2.5 * WATCHDOG_USEC / 1e6)
        assert daemon.listener.pings_since(ready.at) >= 3
        output = daemon.stop()
        assert daemon.proc.returncode == 0, output
        stopping = daemon.listener.wait_for("STOPPING=1")
        assert stopping.at > ready.at
    assert "edge stopped" in output
    # Everything the service wrote is its own, and not readable by others (UMask=0027).
    for path in (installed / "/var/lib/fieldpost").iterdir():
        owner, group, mode = installed.owner_mode(f"/var/lib/fieldpost/{path.name}")
        assert (owner, group) == ("fieldpost", "fieldpost") and not mode & 0o007, (path, mode)


def test_the_bundled_environment_sees_debians_gpio_library_and_nothing_else(installed):
    # python3-lgpio (Raspberry Pi OS) installs into Debian's dist-packages; stand-ins for it and for
    # any other Debian Python module
    dist = installed / "/usr/lib/python3/dist-packages"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "lgpio.py").write_text("WHO = 'python3-lgpio'\n")
    (dist / "fieldpost_other.py").write_text("")
    python = "/usr/lib/fieldpost/bin/python3"
    assert installed.run(python, "-c", "import lgpio; print(lgpio.WHO)").stdout.strip() == "python3-lgpio"
    other = installed.run(python, "-c", "import fieldpost_other", check=False)
    assert other.returncode != 0 and "ModuleNotFoundError" in other.stderr


def test_the_bundled_environment_reads_chirpstack_messages_and_serves_coap(installed):
    # chirpstack-api is bundled without the gRPC stack it declares (packaging/deb/requirements.txt):
    # its protobuf messages, the ChirpStack source and the CoAP server must import and work without it
    python = "/usr/lib/fieldpost/bin/python3"
    script = (
        "from chirpstack_api import integration; import edge.sources.chirpstack, edge.sources.coap;"
        "from edge.sources.chirpstack_events import parse_event;"
        "e = integration.UplinkEvent(deduplication_id='d', f_cnt=3, f_port=1, data=b'x');"
        "e.device_info.dev_eui = '0102030405060708';"
        "print(parse_event('application/a/device/0102030405060708/event/up', e.SerializeToString()).fcnt)"
    )
    assert installed.run(python, "-c", script).stdout.strip() == "3"
