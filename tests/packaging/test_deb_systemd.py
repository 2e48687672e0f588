"""The .deb in a booted Debian (systemd-nspawn): the postinst enables and starts the service under
systemd itself, with the unit's real hardening. READY (the unit is active only after it), a reading
from a bridge module on a serial port, journald priorities, the watchdog restarting a wedged daemon,
the exposure score, a clean stop, and remove/purge with systemd running."""

from __future__ import annotations

import json
import os
import re

from daemon_run import KEY, NODE
from debroot import CONFIG, INSTALLED_DB, Booted, stored_readings
from edge_module_peer import ModulePeer, Node

from tests.conftest import wait_until

BRIDGE = "00000000000000b1"
# Test-only drop-in: the pty stands in for /dev/ttyUSB0 (the unit allows tty majors, not ptys),
# and a watchdog short enough to watch (the unit says 30 s).
DROP_IN = "[Service]\nDeviceAllow=char-pts rw\nWatchdogSec=2\n"


def active(box) -> bool:
    return box.run("systemctl", "is-active", "fieldpost", check=False).stdout.strip() == "active"


def test_systemd_starts_the_installed_service_and_supervises_it(root, deb):
    node = Node(NODE, KEY)
    peer = ModulePeer(BRIDGE, [node]).start()
    os.chown(peer.path, 0, root.gid("dialout"))
    os.chmod(peer.path, 0o660)
    drop_in = root / "/etc/systemd/system/fieldpost.service.d/test.conf"
    drop_in.parent.mkdir(parents=True)
    drop_in.write_text(DROP_IN)
    (root / "/root/fieldpost.deb").write_bytes(deb.read_bytes())
    try:
        with Booted(root, binds={peer.path: "/dev/ttyFP0"}) as box:
            box.run("dpkg", "-i", "/root/fieldpost.deb")
            # Type=notify: "active" only once the daemon said READY=1
            assert box.run("systemctl", "is-enabled", "fieldpost").stdout.strip() == "enabled"
            wait_until(lambda: active(box), timeout=60, what="fieldpost.service active")
            shown = box.show("Type", "StatusText", "User", "NRestarts")
            assert shown["Type"] == "notify" and shown["User"] == "fieldpost"
            assert "storing readings" in shown["StatusText"]

            box.run(
                "runuser",
                "-u",
                "fieldpost",
                "--",
                "fieldpost",
                "devices",
                "add",
                NODE,
                "--key",
                KEY.hex(),
                *node.abp_options(),
            )
            root.set_config_value("link", "ports", '["/dev/ttyFP0"]')
            root.set_config_value("link", "discover", "false")
            box.run("systemctl", "restart", "fieldpost")
            wait_until(lambda: active(box), timeout=60, what="active after the restart")
            fcnt = peer.add_reading(NODE)
            wait_until(lambda: (NODE, fcnt) in peer.log.acked, timeout=30, what="the reading ACKed")
            assert (NODE, fcnt) in stored_readings(root / INSTALLED_DB)
            status = json.loads(box.run("fieldpost", "status", "--json").stdout)
            assert status["daemon"]["links_up"] == 1, status["daemon"]

            # journald priorities: `-p warning` shows warnings and errors, not the info lines
            warnings = box.journal("-u", "fieldpost", "-p", "warning").splitlines()
            assert any("logger=fieldpost.gpio" in line for line in warnings), warnings  # no GPIO here
            assert warnings and all(re.search(r"level=(warning|error|critical)", line) for line in warnings)
            assert "edge started" in box.journal("-u", "fieldpost", "-p", "info")

            # the exposure score of the unit as systemd loaded it (drop-in included)
            security = box.run("systemd-analyze", "security", "--no-pager", "fieldpost").stdout
            score = float(re.search(r"Overall exposure level for fieldpost.service: ([0-9.]+)", security)[1])
            assert score <= 3.0, security

            # the watchdog: fed while alive; a frozen daemon is killed and started again
            first = box.show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
            wait_until(
                lambda: box.show("WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"] != first,
                timeout=5,
                what="a WATCHDOG=1 ping",
            )
            frozen = box.show("MainPID")["MainPID"]
            box.run("systemctl", "kill", "--kill-whom=main", "--signal=SIGSTOP", "fieldpost")
            wait_until(
                lambda: box.show("NRestarts")["NRestarts"] == "1", timeout=20, what="a watchdog restart"
            )
            wait_until(lambda: active(box), timeout=60, what="active after the watchdog restart")
            assert box.show("MainPID")["MainPID"] != frozen
            assert "Watchdog timeout" in box.journal("-u", "fieldpost")

            box.run("systemctl", "stop", "fieldpost")
            assert box.show("ActiveState", "Result") == {"ActiveState": "inactive", "Result": "success"}
            assert "edge stopped" in box.journal("-u", "fieldpost")

            # remove keeps the data and the configuration; purge removes them
            box.run("systemctl", "start", "fieldpost")
            box.run("dpkg", "--remove", "fieldpost")
            assert not active(box)
            assert (NODE, fcnt) in stored_readings(root / INSTALLED_DB)
            assert (root / CONFIG).exists()
            box.run("dpkg", "--purge", "fieldpost")
            assert not (root / "/var/lib/fieldpost").exists() and not (root / "/etc/fieldpost").exists()
    finally:
        peer.close()
