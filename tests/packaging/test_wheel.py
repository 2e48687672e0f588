"""The sdist and the wheel carry firmware/, hardware/ and packaging/, so an installed Fieldpost can
provision a module: the wheel built from the sdist is installed in a fresh virtual environment
outside the checkout, and its `fieldpost provision module` provisions a virtual module."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from edge.store import connect, migrate
from provisioning.testing import BlankModule

REPO = Path(__file__).resolve().parents[2]
ASSETS = ("firmware", "hardware", "packaging")


def tracked_assets() -> set[str]:
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard", *ASSETS],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name for name in out.splitlines() if (REPO / name).is_file()}


def test_requirements_lock_pins_what_setup_cfg_pins():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    direct = [line.split("#")[0].strip() for line in cfg["options"]["install_requires"].splitlines()]
    lock = (REPO / "packaging/deb/requirements.txt").read_text().splitlines()
    locked = {
        re.sub(r"[-_.]+", "-", name).lower(): version
        for name, version in (line.split("==") for line in lock if "==" in line)
    }
    for requirement in filter(None, direct):
        name, version = requirement.split("==")
        assert locked.get(re.sub(r"[-_.]+", "-", name).lower()) == version, requirement


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """sdist from a clean copy of the tree, then the wheel from that sdist (as pip would build it)."""
    tmp = tmp_path_factory.mktemp("dists")
    src = tmp / "src"
    for name in subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines():
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((REPO / name).read_bytes())
    out = tmp / "dist"
    build = [sys.executable, "-m", "build", "--outdir", str(out)]
    subprocess.run([*build, "--sdist", str(src)], check=True, capture_output=True, timeout=600)
    sdist = next(out.glob("fieldpost-*.tar.gz"))
    subprocess.run([*build, "--wheel", str(sdist)], check=True, capture_output=True, timeout=600)
    return sdist, next(out.glob("fieldpost-*.whl"))


def test_sdist_and_wheel_carry_the_data_folders(dists):
    sdist, wheel = dists
    wanted = tracked_assets()
    assert {"firmware/main.py", "hardware/boards/unix.json", "packaging/fieldpost.service"} <= wanted
    with tarfile.open(sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert wanted <= in_sdist
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = {
            name.removeprefix("edge/_assets/") for name in whl.namelist() if name.startswith("edge/_assets/")
        }
    assert wanted == in_wheel


def test_the_wheel_carries_every_panel_template_and_static_file(dists):
    _, wheel = dists
    listed = subprocess.run(
        [
            "git",
            "-C",
            str(REPO),
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "webui/templates",
            "webui/static",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    panel = {name for name in listed.splitlines() if (REPO / name).is_file()}
    assert "webui/static/icons/favicon.ico" in panel
    with zipfile.ZipFile(wheel) as whl:
        assert panel <= set(whl.namelist())


def test_an_installed_wheel_provisions_a_virtual_module(dists, tmp_path):
    _, wheel = dists
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "install", str(wheel)], check=True, timeout=600)

    db = tmp_path / "edge.db"
    conn = connect(db)
    migrate(conn)
    conn.close()
    module = BlankModule(tmp_path / "flash").start()
    try:
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
        result = subprocess.run(
            [str(venv / "bin" / "fieldpost"), "provision", "module", "--port", module.port, "--board", "unix"]
            + ["--role", "bridge", "--db", str(db), "--cache-dir", str(tmp_path / "cache"), "--no-reset"]
            + ["--timeout", "10"],
            cwd=tmp_path,  # outside the checkout: only the installed package is there to find
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        module.close()
    assert result.returncode == 0, result.stdout + result.stderr
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "from edge.assets import asset_dir; print(asset_dir('firmware'))",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(venv)) and not where.startswith(str(REPO))
    assert (tmp_path / "flash" / "main.py").read_bytes() == (REPO / "firmware" / "main.py").read_bytes()
    assert (tmp_path / "flash" / "config.json").exists()
    conn = connect(db, readonly=True)
    try:
        assert conn.execute("SELECT count(*) FROM devices WHERE role = 'bridge'").fetchone()[0] == 1
    finally:
        conn.close()
    assert os.path.exists(tmp_path / "cache")
