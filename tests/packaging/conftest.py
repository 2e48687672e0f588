"""Fixtures for the Debian package tests: the .deb under test, an older build of it, fresh Debian roots.

``make test`` builds the package first (``make deb``) and names it in FIELDPOST_DEB; run on
their own, these tests build it themselves. The base Debian root (mmdebstrap) and the builds
are made once per test run and shared by the pytest-xdist workers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from debroot import BOOT_PACKAGES, DebRoot, depends_of, make_base_root, once

REPO = Path(__file__).resolve().parents[2]
# the edge tests' CPython module peer (tests/edge/edge_module_peer.py) plays the bridge module here
sys.path.insert(0, str(REPO / "tests" / "edge"))
BUILDER = REPO / "packaging" / "deb" / "build_deb.py"


@pytest.fixture(scope="session")
def shared(tmp_path_factory, worker_id) -> Path:
    """A folder all xdist workers of this run share (each worker's basetemp sits in it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if worker_id != "master" else base


def build_deb(out: Path, version: str) -> Path:
    out.mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, str(BUILDER), "--out", str(out), "--version", version],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def project_version() -> str:
    for line in (REPO / "setup.cfg").read_text().splitlines():
        if line.startswith("version = "):
            return line.split("=", 1)[1].strip()
    raise AssertionError("no version in setup.cfg")


@pytest.fixture(scope="session")
def deb(shared) -> Path:
    given = os.environ.get("FIELDPOST_DEB")
    if given:
        assert Path(given).is_file(), f"FIELDPOST_DEB={given} does not exist (make deb)"
        return Path(given)
    out = once(shared, "deb-current", lambda d: build_deb(d, f"{project_version()}-1"))
    return next(out.glob("*.deb"))


@pytest.fixture(scope="session")
def previous_deb(shared) -> Path:
    """The same tree built as an earlier version (sorts before -1), to upgrade from."""
    out = once(shared, "deb-previous", lambda d: build_deb(d, f"{project_version()}-0~previous1"))
    return next(out.glob("*.deb"))


@pytest.fixture(scope="session")
def base_root(shared, deb) -> Path:
    """A fresh Debian bookworm: minbase, what the package depends on, and systemd to boot it."""
    packages = sorted({*depends_of(deb), *BOOT_PACKAGES})
    return once(shared, "debian-root", lambda d: make_base_root(d, packages))


@pytest.fixture
def root(base_root, tmp_path) -> DebRoot:
    """A copy of the base root for one test (a copy takes about a second; the base is kept clean)."""
    path = tmp_path / "root"
    subprocess.run(["cp", "-a", "--reflink=auto", str(base_root), str(path)], check=True)
    yield DebRoot(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def installed(root, deb) -> DebRoot:
    """The root with the package installed by dpkg (maintainer scripts under chroot, no systemd)."""
    root.dpkg("-i", deb)
    return root
