"""Upgrade, remove, purge and bad input, with dpkg in a fresh Debian root (no systemd running).

The package never deletes data on remove or upgrade; only purge removes /var/lib/fieldpost.
Bad input (a database root made, a config the service cannot read, a read-only /etc/fieldpost,
a leftover group) gets a message naming the path and the fix, and loses nothing.
"""

from __future__ import annotations

import json
import os

from daemon_run import NODE, InstalledDaemon, node_add_command
from debroot import CONFIG, INSTALLED_DB, stored_readings

from edge.store import MIGRATIONS, applied_migrations, connect, migrate

OLD_DEVICE = "00000000000000d1"


def device_ids(root) -> set[str]:
    listed = root.run("fieldpost", "devices", "list", "--json", user="fieldpost").stdout
    return {row["id"] for row in json.loads(listed)}


def all_migrations_applied(root) -> bool:
    conn = connect(root / INSTALLED_DB, readonly=True)
    try:
        return applied_migrations(conn) == sorted(name for name, _ in MIGRATIONS)
    finally:
        conn.close()


def test_upgrade_keeps_readings_and_an_edited_conffile(root, previous_deb, deb):
    root.dpkg("-i", previous_deb)
    with InstalledDaemon(root) as daemon:
        daemon.ready()
        first = daemon.store_reading()
    root.set_config_value("edge", "site", '"north-well"')  # the administrator's edit

    upgrade = root.dpkg("-i", deb)
    assert "database" in upgrade.stdout  # the new postinst ran the migrations step

    version = root.run("dpkg-query", "--showformat=${Version}", "--show", "fieldpost").stdout
    assert version == deb.name.split("_")[1]
    assert 'site = "north-well"' in (root / CONFIG).read_text()
    assert not (root / f"{CONFIG}.dpkg-new").exists() and not (root / f"{CONFIG}.dpkg-dist").exists()
    assert root.owner_mode(CONFIG) == ("root", "fieldpost", 0o640)
    assert (NODE, first) in stored_readings(root / INSTALLED_DB)
    assert NODE in device_ids(root)
    assert root.run("fieldpost", "db", "check", user="fieldpost").returncode == 0  # nothing pending

    with InstalledDaemon(root, next_fcnt=first + 1, register=False) as daemon:
        daemon.ready()
        second = daemon.store_reading()
    assert {(NODE, first), (NODE, second)} <= stored_readings(root / INSTALLED_DB)


def test_remove_keeps_data_and_config_purge_removes_them(installed, deb):
    installed.run("fieldpost", "devices", "add", NODE, user="fieldpost")
    installed.set_config_value("edge", "site", '"kept"')

    installed.dpkg("--remove", "fieldpost")
    assert not (installed / "/usr/bin/fieldpost").exists()
    assert (installed / INSTALLED_DB).exists() and 'site = "kept"' in (installed / CONFIG).read_text()
    assert (installed / "/etc/fieldpost/tls/panel.key").exists()

    installed.dpkg("-i", deb)  # back again: everything is still there
    assert NODE in device_ids(installed)

    installed.dpkg("--purge", "fieldpost")
    assert not (installed / "/var/lib/fieldpost").exists()
    assert not (installed / "/etc/fieldpost").exists()
    assert not (installed / "/etc/systemd/system/multi-user.target.wants/fieldpost.service").exists()


def test_a_database_root_made_in_an_older_install_is_handed_over_and_migrated(root, deb):
    db = root / INSTALLED_DB
    db.parent.mkdir(parents=True)
    conn = connect(db)
    migrate(conn, MIGRATIONS[:1])  # a database from an older version
    with conn:
        conn.execute("INSERT INTO devices (id, key, created_at) VALUES (?, ?, 0)", (OLD_DEVICE, bytes(16)))
    conn.close()
    os.chmod(db, 0o644)  # root:root 0644, as `sudo` made it

    out = root.dpkg("-i", deb).stdout
    assert f"{INSTALLED_DB}: owner root:root -> fieldpost:fieldpost (it belonged to root" in out
    assert root.owner_mode(INSTALLED_DB) == ("fieldpost", "fieldpost", 0o640)
    assert all_migrations_applied(root)
    assert OLD_DEVICE in device_ids(root)


def test_the_daemon_names_a_database_it_cannot_write_and_the_fix(installed):
    installed.run(*node_add_command(), user="fieldpost")
    db = installed / INSTALLED_DB
    os.chown(db, 0, 0)  # e.g. a `fieldpost db restore` run with sudo
    os.chmod(db, 0o644)
    before = db.read_bytes()

    with InstalledDaemon(installed, register=False) as daemon:
        output = daemon.exited()
        assert daemon.proc.returncode != 0
        assert not daemon.listener.with_line("READY=1")
    assert f"{INSTALLED_DB} is not writable by user fieldpost (owner root:root, mode 0644)" in output
    assert "sudo chown" in output and "sudo fieldpost init" in output
    assert db.read_bytes() == before

    fixed = installed.run("fieldpost", "init", "--system-only").stdout  # the fix the message names
    assert f"{INSTALLED_DB}: owner root:root -> fieldpost:fieldpost" in fixed
    with InstalledDaemon(installed, register=False) as daemon:
        daemon.ready()
        assert (NODE, daemon.store_reading()) in stored_readings(db)


def test_a_config_the_service_cannot_read_is_named_with_the_fix(installed):
    os.chown(installed / CONFIG, 0, 0)  # root:root 0640: what `fieldpost init` used to leave
    with InstalledDaemon(installed, register=False) as daemon:
        output = daemon.exited()
        assert daemon.proc.returncode != 0
    assert f"{CONFIG}: cannot read: Permission denied; fix:" in output
    assert f"sudo chgrp fieldpost {CONFIG}" in output

    installed.run("fieldpost", "init", "--system-only")
    assert installed.owner_mode(CONFIG) == ("root", "fieldpost", 0o640)
    with InstalledDaemon(installed, register=False) as daemon:
        daemon.ready()


def test_an_upgrade_that_cannot_write_etc_fails_cleanly_and_keeps_the_data(root, previous_deb, deb):
    root.dpkg("-i", previous_deb)
    root.run("fieldpost", "devices", "add", NODE, user="fieldpost")

    failed = root.dpkg("-i", deb, check=False, read_only=["/etc/fieldpost"])
    assert failed.returncode != 0
    assert "/etc/fieldpost/fieldpost.toml" in failed.stderr and "Read-only file system" in failed.stderr
    assert NODE in device_ids(root)  # nothing lost, the old version still works

    root.dpkg("-i", deb)  # once /etc is writable again, the upgrade goes through
    assert NODE in device_ids(root)


def test_a_leftover_fieldpost_group_is_joined_not_a_failure(root, deb):
    root.run("groupadd", "--system", "fieldpost")
    gid = root.gid("fieldpost")
    root.dpkg("-i", deb)
    user = next(
        line for line in (root / "/etc/passwd").read_text().splitlines() if line.startswith("fieldpost:")
    )
    assert int(user.split(":")[3]) == gid
