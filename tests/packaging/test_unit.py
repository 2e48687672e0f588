"""The systemd unit: what the issue asks of it, `systemd-analyze verify` in an installed root, and
its exposure score (`systemd-analyze security`) offline. The online score, with systemd running
the unit, is checked in test_deb_systemd.py."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from debroot import UNIT, unit_settings

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "packaging" / "fieldpost.service"
MAX_EXPOSURE = 3.0


def test_the_unit_is_notify_with_a_watchdog_and_hardened():
    unit = unit_settings(SHIPPED.read_text())
    one = {key: values[-1] for key, values in unit.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert int(one["WatchdogSec"]) > 0
    assert (one["User"], one["Group"]) == ("fieldpost", "fieldpost")
    assert one["SupplementaryGroups"].split() == ["dialout", "gpio"]
    assert one["NoNewPrivileges"] == "yes" and one["ProtectSystem"] == "strict"
    assert one["ReadWritePaths"] == "/var/lib/fieldpost"
    assert one["PrivateTmp"] == "yes" and one["ProtectHome"] == "yes"
    assert one["CapabilityBoundingSet"] == ""  # nothing: the panel does not bind a port below 1024
    panel = tomllib.loads((REPO / "packaging/deb/fieldpost.toml").read_text()).get("webui", {})
    assert panel.get("port", 8080) >= 1024


def exposure(*args: str) -> float:
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", *args], capture_output=True, text=True
    ).stdout
    return float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)[1])


def test_exposure_score_is_at_most_3(tmp_path):
    assert exposure(str(SHIPPED)) <= MAX_EXPOSURE
    # the measure can fail: the same unit without its hardening scores far worse
    bare = tmp_path / "fieldpost.service"
    bare.write_text(
        "\n".join(
            line
            for line in SHIPPED.read_text().splitlines()
            if "=" not in line
            or line.split("=")[0] in ("Type", "User", "Group", "ExecStart", "WantedBy", "Description")
        )
    )
    assert exposure(str(bare)) > MAX_EXPOSURE


def verify(root: Path, unit: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", unit], capture_output=True, text=True, timeout=120
    )


def test_systemd_analyze_verify_passes_on_the_installed_unit(installed):
    result = verify(installed.path, "fieldpost.service")
    assert result.returncode == 0, result.stderr
    # and fails when something the unit needs is missing from the system
    (installed / "/usr/bin/fieldpost").unlink()
    broken = verify(installed.path, "fieldpost.service")
    assert broken.returncode != 0 and "/usr/bin/fieldpost" in broken.stderr
    assert (installed / UNIT).exists()
