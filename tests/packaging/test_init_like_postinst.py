"""`fieldpost init` on a Debian system without the package (a pip install) sets it up as the package's
postinst does: the same user and groups, the same owners and modes; a second run changes nothing.
Bad input: a read-only /etc/fieldpost, a missing user without root: a message naming the path and the fix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from debroot import CONFIG, INSTALLED_DB

REPO = Path(__file__).resolve().parents[2]
FIELDPOST = Path(sys.executable).with_name("fieldpost")  # this checkout's, as `pip install` gives it
# what the package and init both set up
COMMON = ("/etc/fieldpost", str(CONFIG), "/etc/fieldpost/tls", "/etc/fieldpost/tls/panel.key")
COMMON += ("/etc/fieldpost/tls/panel.crt", "/var/lib/fieldpost", str(INSTALLED_DB))


def init(root, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [
            str(FIELDPOST),
            "init",
            "--root",
            str(root.path),
            "--generate-password",
            "--host",
            "localhost",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


def snapshot(root) -> dict:
    files = {path: root.owner_mode(path) for path in COMMON}
    accounts = {name: (root / name).read_text() for name in ("/etc/passwd", "/etc/group", "/etc/shadow")}
    return {"files": files, "accounts": accounts, "config": (root / CONFIG).read_bytes()}


def test_init_sets_up_what_the_postinst_sets_up_and_a_rerun_changes_nothing(installed, base_root, tmp_path):
    bare = type(installed)(tmp_path / "bare")
    subprocess.run(["cp", "-a", str(base_root), str(bare.path)], check=True)

    first = init(bare).stdout
    assert "created system user fieldpost" in first and "added fieldpost to group dialout" in first
    assert {path: bare.owner_mode(path) for path in COMMON} == {
        path: installed.owner_mode(path) for path in COMMON
    }
    assert bare.groups_of("fieldpost") == installed.groups_of("fieldpost") >= {"dialout", "gpio"}
    passwd = {
        r: next(x for x in (r / "/etc/passwd").read_text().splitlines() if x.startswith("fieldpost:"))
        for r in (bare, installed)
    }
    assert passwd[bare].split(":")[4:] == passwd[installed].split(":")[4:]  # comment, home, shell

    before = snapshot(bare)
    second = init(bare).stdout
    assert "user fieldpost exists" in second and "owners and modes already right" in second
    assert snapshot(bare) == before
    shutil.rmtree(bare.path)  # a whole system: not left for pytest's retention


def test_init_on_a_read_only_etc_fieldpost_names_the_path_and_the_fix(root):
    etc = root / "/etc/fieldpost"
    etc.mkdir()
    script = f'mount --bind "{etc}" "{etc}" && mount -o remount,bind,ro "{etc}" && exec "$@"'
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
        + [str(FIELDPOST), "init", "--root", str(root.path), "--generate-password"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"cannot write {CONFIG}: Read-only file system; fix: remount it read-write" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (root / INSTALLED_DB).exists()  # it stopped before touching anything else


def test_a_missing_user_without_root_names_the_fix(root):
    # Debian's own python3.11 and this tree: the checkout's venv lives under /root, which nobody cannot
    # read; and a system root nobody can read (pytest's temporary folders are root's alone)
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        (Path(tmp) / "etc").mkdir()
        for name in ("passwd", "group"):
            shutil.copy2(root / f"/etc/{name}", Path(tmp) / "etc" / name)
        code = "from provisioning.account import ensure_account; ensure_account(Path(sys.argv[1]), print)"
        result = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3.11", "-c"]
            + [f"import sys; from pathlib import Path; {code}", tmp],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"},
            timeout=60,
        )
        assert result.returncode != 0
        assert f"the system user 'fieldpost' is missing from {tmp}/etc/passwd" in result.stderr
        assert "only root can create it; fix: run `sudo fieldpost init`" in result.stderr
        assert "fieldpost:" not in (Path(tmp) / "etc/passwd").read_text()
