"""`make deb`: build/fieldpost_<version>_<arch>.deb for the machine it runs on, with dpkg-deb.

    python packaging/deb/build_deb.py [--out build] [--version 0.1.0-1]

What the package holds:
  /usr/lib/fieldpost/               a self-contained virtual environment over Debian's python3:
                                    Fieldpost's wheel and every pinned wheel of requirements.txt,
                                    so the Pi needs neither pip nor the internet
  /usr/bin/fieldpost                runs ``python3 -m edge`` in that environment (and its man page)
  /lib/systemd/system/fieldpost.service, /lib/udev/rules.d/99-fieldpost.rules
  /etc/fieldpost/fieldpost.toml     the default configuration (a conffile)
  /var/lib/fieldpost/               the database (created and migrated by the postinst)
  /usr/share/doc/fieldpost/         copyright (with every bundled package's licence), changelog
and the maintainer scripts beside this file (postinst, prerm, postrm).

Wheels with compiled code are for the build machine's CPU and Python, so a package is built
on (or for, in an emulated chroot) the architecture it is for: README.md, "Install on a
Raspberry Pi", tells how to build the arm64 and armhf packages for Raspberry Pi OS bookworm.
"""

from __future__ import annotations

import argparse
import configparser
import email.utils
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PACKAGE = "fieldpost"
VENV = Path("usr/lib/fieldpost")
PYTHON = "python3.11"  # Debian bookworm's (and Raspberry Pi OS bookworm's) python3
MAINTAINER = "Fieldpost maintainers <maintainers@fieldpost.example>"
CONFFILE = Path("etc/fieldpost/fieldpost.toml")
# Debian ships python3-lgpio only for the Raspberry Pi's architectures (Raspberry Pi OS).
LGPIO_ARCHS = ("arm64", "armhf")
DESCRIPTION = """\
edge appliance for remote LPWAN sites
 Fieldpost runs on a Raspberry Pi next to a bridge module: it keeps every
 reading of the site's battery-powered modules in SQLite (acknowledged only
 once durable), serves a panel on the site LAN that works without internet,
 and syncs with the cloud over MQTT or HTTPS whenever a connection is there.
 .
 The package bundles the application and its pinned Python dependencies in a
 virtual environment under /usr/lib/fieldpost, and runs it as the hardened
 systemd service fieldpost.service under the system user fieldpost."""
LAUNCHER = f"""#!/bin/sh
# fieldpost: the application in its bundled environment (/{VENV}). -P: the current
# folder never lands on the module path (an admin may run this as root anywhere).
exec /{VENV}/bin/python3 -P -m edge "$@"
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build", help="where the .deb goes")
    parser.add_argument("--version", help="Debian version (default: setup.cfg's version, revision -1)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    version = args.version or f"{project_version()}-1"
    with tempfile.TemporaryDirectory(prefix="fieldpost-deb-") as tmp:
        work = args.work or Path(tmp)
        deb = build(work, args.out, version)
    print(deb)
    return 0


def project_version() -> str:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    return cfg["metadata"]["version"]


def run(*argv: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], check=True, **kwargs)


def build(work: Path, out: Path, version: str) -> Path:
    check_tools()
    arch = run("dpkg", "--print-architecture", capture_output=True, text=True).stdout.strip()
    work = Path(work)
    shutil.rmtree(work, ignore_errors=True)
    wheels, root = work / "wheels", work / "root"
    wheels.mkdir(parents=True)
    pip = build_env(work / "pip")
    build_wheels(pip, work / "src", wheels)
    make_venv(pip, root / VENV, wheels)
    add_files(root, version)
    write_control(root, version, arch)
    out.mkdir(parents=True, exist_ok=True)
    deb = out / f"{PACKAGE}_{version}_{arch}.deb"
    run("dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb, stdout=subprocess.DEVNULL)
    return deb


def check_tools() -> None:
    for tool, package in (("dpkg-deb", "dpkg"), ("dpkg-shlibdeps", "dpkg-dev"), ("strip", "binutils")):
        if shutil.which(tool) is None:
            sys.exit(f"build_deb: {tool} is missing (sudo apt install {package})")
    if not Path(f"/usr/bin/{PYTHON}").exists():
        sys.exit(f"build_deb: /usr/bin/{PYTHON} is missing (sudo apt install {PYTHON}-venv {PYTHON}-dev)")


def build_env(env: Path) -> list[str]:
    """pip under Debian's own python3.11: what it compiles (sdist-only packages) fits the target.

    Its own cache: pip's shared one may hold a wheel another Python 3.11 (a pyenv build) compiled,
    with that Python's paths baked in, and would hand it out for the same tags.
    """
    run(f"/usr/bin/{PYTHON}", "-m", "venv", env, stdout=subprocess.DEVNULL)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fieldpost" / "deb-pip"
    return [
        str(env / "bin" / "python"),
        "-m",
        "pip",
        "--disable-pip-version-check",
        "--quiet",
        "--cache-dir",
        str(cache),
    ]


def quiet(*argv: str | Path) -> None:
    """Run; show the output only if it fails (setuptools' build warnings are not ours to read)."""
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise subprocess.CalledProcessError(result.returncode, argv)


def source_files() -> list[str]:
    """The files of the checkout that a fresh clone would have, plus new ones not yet committed."""
    listed = run(
        "git",
        "-C",
        REPO,
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
        capture_output=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


def build_wheels(pip: list[str], src: Path, wheels: Path) -> None:
    # A clean copy: setuptools would otherwise pick up stale modules from an old build/lib.
    for name in source_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    quiet(*pip, "wheel", "--no-deps", "--wheel-dir", wheels, src)
    # Every pinned dependency as a wheel (sdist-only ones are built here, for this CPU). PEP 517 for
    # all: an sdist with only a setup.py (chirpstack-api) would otherwise need `wheel` in this venv.
    quiet(
        *pip,
        "wheel",
        "--no-deps",
        "--use-pep517",
        "--wheel-dir",
        wheels,
        "--requirement",
        HERE / "requirements.txt",
    )


def make_venv(pip: list[str], venv: Path, wheels: Path) -> None:
    """A virtual environment by hand: it must point at the target's /usr/bin/python3, not this build's."""
    site = venv / "lib" / PYTHON / "site-packages"
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "bin" / "python3").symlink_to(f"../../../bin/{PYTHON}")  # /usr/bin/python3.11
    (venv / "bin" / "python").symlink_to("python3")
    debian_python = run(f"/usr/bin/{PYTHON}", "-c", "import platform; print(platform.python_version())",
                        capture_output=True, text=True).stdout.strip()  # fmt: skip
    (venv / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {debian_python}\n"
    )
    fieldpost_wheel = next(wheels.glob("fieldpost-*.whl"))
    quiet(
        *pip, "install", "--no-index", "--find-links", wheels, "--no-deps", "--no-compile",
        "--target", site, "--requirement", HERE / "requirements.txt", fieldpost_wheel,
    )  # fmt: skip
    shutil.rmtree(site / "bin")  # pip's scripts name the build's Python; /usr/bin/fieldpost runs `-m edge`
    # PyYAML (apprise needs it to import) ships libyaml linked into its C speed-up, which Debian forbids
    # (lintian: embedded-library). Fieldpost parses no YAML; without the .so PyYAML is pure Python.
    for path in (site / "yaml").glob("_yaml*.so"):
        path.unlink()
    # Some wheels (certifi's tests) mark plain modules executable: lintian's executable-not-elf-or-script
    for path in site.rglob("*.py"):
        if path.stat().st_mode & 0o111 and not path.read_bytes().startswith(b"#!"):
            path.chmod(0o644)
    strip(venv)
    for name in ("fieldpost_system_gpio.py", "fieldpost_system_gpio.pth"):
        shutil.copy2(HERE / name, site / name)
    check_venv(venv)


# Requirements a bundled distribution declares that are deliberately left out (requirements.txt says
# why): chirpstack-api's gRPC client stack, which Fieldpost never imports (only its protobuf messages).
NOT_BUNDLED = {"chirpstack-api": ("grpcio", "google-api-core")}


def check_venv(venv: Path) -> None:
    """Run the environment with Debian's interpreter: every requirement met, the command starts."""
    script = (
        "import importlib.metadata as md\n"
        "from packaging.requirements import Requirement\n"
        f"not_bundled = {NOT_BUNDLED!r}\n"
        "missing = []\n"
        "for dist in md.distributions():\n"
        "    for text in dist.requires or []:\n"
        "        req = Requirement(text)\n"
        "        if req.marker and not req.marker.evaluate({'extra': ''}):\n"
        "            continue\n"
        "        if req.name in not_bundled.get(dist.metadata['Name'], ()):\n"
        "            continue\n"
        "        try:\n"
        "            found = md.version(req.name)\n"
        "        except md.PackageNotFoundError:\n"
        "            found = None\n"
        "        if found is None or not req.specifier.contains(found, prereleases=True):\n"
        "            missing.append(f\"{dist.metadata['Name']} needs {req} (found {found})\")\n"
        "if missing:\n"
        "    raise SystemExit('requirements.txt is incomplete: ' + '; '.join(missing))\n"
    )
    run_staged(venv, script)
    run_staged(venv, "import runpy; runpy.run_module('edge', run_name='__main__')", "--help")
    # what is left of chirpstack-api without its gRPC stack is what edge.sources uses
    run_staged(venv, "import edge.sources.chirpstack, edge.sources.coap")


def run_staged(venv: Path, code: str, *args: str) -> str:
    """Run ``code`` with Debian's python3.11 on the environment's site-packages alone (-S: none of
    the build machine's), as it will run on the target; returns what it printed."""
    site = venv / "lib" / PYTHON / "site-packages"
    prelude = f"import sys; sys.path[:0] = [{str(site)!r}]; sys.argv[1:] = {list(args)!r}\n"
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    result = run(
        f"/usr/bin/{PYTHON}", "-S", "-P", "-c", prelude + code, env=env, capture_output=True, text=True
    )
    return result.stdout


def strip(venv: Path) -> None:
    """What dh_strip does for shared objects: no symbol tables or debug sections in the package."""
    for path in venv.rglob("*.so"):
        if _is_elf(path):
            run("strip", "--remove-section=.comment", "--remove-section=.note", "--strip-unneeded", path)


def add_files(root: Path, version: str) -> None:
    install(REPO / "packaging" / "fieldpost.service", root / "lib/systemd/system/fieldpost.service")
    install(REPO / "hardware" / "pi" / "99-fieldpost.rules", root / "lib/udev/rules.d/99-fieldpost.rules")
    install(HERE / "fieldpost.toml", root / CONFFILE)
    (root / "var/lib/fieldpost").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/fieldpost").write_text(LAUNCHER)
    (root / "usr/bin/fieldpost").chmod(0o755)
    man = root / "usr/share/man/man1"
    man.mkdir(parents=True)
    write_gzip(man / "fieldpost.1.gz", manual_page(root / VENV).encode())
    doc = root / "usr/share/doc" / PACKAGE
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright_text(root / VENV / "lib" / PYTHON / "site-packages"))
    write_gzip(doc / "changelog.Debian.gz", changelog(version).encode())
    write_gzip(doc / "README.md.gz", (REPO / "README.md").read_bytes())
    normalise_modes(root)


def install(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)


def write_gzip(path: Path, data: bytes) -> None:
    # mtime 0 and no file name in the header: the same input gives the same bytes
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
    ):
        gz.write(data)


def changelog(version: str) -> str:
    when = email.utils.formatdate(int(os.environ.get("SOURCE_DATE_EPOCH", time.time())))
    return (
        f"{PACKAGE} ({version}) bookworm; urgency=medium\n\n"
        "  * Built from the Fieldpost source tree by packaging/deb/build_deb.py.\n\n"
        f" -- {MAINTAINER}  {when}\n"
    )


def copyright_text(site: Path) -> str:
    """Fieldpost's licence, then every bundled distribution with the licence its metadata declares."""
    import email.parser

    rows = []
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        msg = email.parser.Parser().parsestr(meta.read_text(encoding="utf-8"), headersonly=True)
        licence = msg.get("License-Expression") or _short(msg.get("License")) or ", ".join(
            c.split(" :: ")[-1] for c in msg.get_all("Classifier") or [] if c.startswith("License ::")
        )  # fmt: skip
        rows.append(f"  {msg['Name']} {msg['Version']}: {licence or 'see its licence file'}")
    return (
        "Fieldpost, an edge appliance for remote LPWAN sites.\n\n"
        + (REPO / "LICENSE").read_text(encoding="utf-8")
        + "\nBundled Python distributions, in /usr/lib/fieldpost/lib/python3.11/site-packages; each\n"
        "one's full licence text is in its *.dist-info folder there:\n\n"
        + "\n".join(rows)
        + "\n\nLicences Debian ships are in /usr/share/common-licenses: the Apache License 2.0 of\n"
        "several of them (e.g. cryptography) is /usr/share/common-licenses/Apache-2.0.\n"
        + "\nThe panel's vendored uPlot (webui/static/vendor/uplot) is MIT-licensed; its licence is\n"
        "beside it in the edge package's webui/static/vendor/uplot folder.\n"
    )


def manual_page(venv: Path) -> str:
    """fieldpost(1): the commands with their one-line help, from the click commands themselves."""
    script = (
        "from edge import cli\n"
        "for path, cmd in cli.command_paths():\n"
        "    print(path + '\\t' + (cmd.get_short_help_str(limit=200) or ''))\n"
    )
    listing = run_staged(venv, script)
    lines = [
        '.TH FIELDPOST 1 "" "fieldpost" "Fieldpost"',
        ".SH NAME",
        "fieldpost \\- edge appliance for remote LPWAN sites: daemon, devices, buffer database",
        ".SH SYNOPSIS",
        ".B fieldpost",
        "[\\-\\-config FILE] [\\-\\-db FILE] COMMAND [OPTIONS]",
        ".SH DESCRIPTION",
        "Every command explains itself with \\fB\\-\\-help\\fR. The service runs \\fBfieldpost run\\fR",
        "as user fieldpost (fieldpost.service); \\fBjournalctl \\-u fieldpost\\fR shows its log.",
        ".SH COMMANDS",
    ]
    for row in listing.splitlines():
        path, _, text = row.partition("\t")
        lines += [".TP", f".B {_roff(path)}", _roff(text)]
    lines += [
        ".SH FILES",
        ".TP\n.I /etc/fieldpost/fieldpost.toml\nthe configuration (\\fBfieldpost config \\-\\-example\\fR)",
        ".TP\n.I /var/lib/fieldpost/fieldpost.db\nthe buffer of readings",
        ".SH SEE ALSO",
        "/usr/share/doc/fieldpost/README.md.gz",
    ]
    return "\n".join(lines) + "\n"


def _roff(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def _short(text: str | None) -> str:
    # Some packages put the whole licence text in License:; its first line names it well enough.
    return (text or "").strip().splitlines()[0][:60] if text and text.strip() else ""


def normalise_modes(root: Path) -> None:
    """0755 for folders and executables, 0644 for the rest: wheels and umasks vary. A file counts as
    executable only if it is a program (ELF or #!): some wheels (protobuf) mark every file executable."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or (path.stat().st_mode & 0o111 and (_is_elf(path) or _is_script(path)))
        path.chmod(0o755 if executable else 0o644)


def _is_script(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"#!"


def installed_size_kib(root: Path) -> int:
    return sum((p.lstat().st_size + 1023) // 1024 for p in root.rglob("*") if not p.is_dir()) + sum(
        1 for p in root.rglob("*") if p.is_dir()
    )


def shlib_depends(root: Path) -> str:
    """dpkg-shlibdeps over every ELF object: the libc6 (and other) versions the wheels' code needs."""
    objects = [p for p in (root / VENV).rglob("*") if p.is_file() and not p.is_symlink() and _is_elf(p)]
    private = sorted({str(p.parent) for p in objects if p.parent.name.endswith(".libs")})
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "debian").mkdir()
        (Path(tmp) / "debian" / "control").write_text(
            f"Source: {PACKAGE}\n\nPackage: {PACKAGE}\nArchitecture: any\n"
        )  # the minimum dpkg-shlibdeps reads
        result = run(
            "dpkg-shlibdeps", "-O", "--ignore-missing-info", *(f"-l{p}" for p in private),
            *(f"-e{p}" for p in objects),
            cwd=tmp, capture_output=True, text=True,
        )  # fmt: skip
    line = next((x for x in result.stdout.splitlines() if x.startswith("shlibs:Depends=")), "")
    return line.partition("=")[2]


def _is_elf(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def write_control(root: Path, version: str, arch: str) -> None:
    debian = root / "DEBIAN"
    debian.mkdir()
    depends = [
        "python3 (>= 3.11~)",
        "python3 (<< 3.12)",
        "passwd",
        *filter(None, shlib_depends(root).split(", ")),
    ]
    recommends = ["mosquitto", *(["python3-lgpio"] if arch in LGPIO_ARCHS else [])]
    (debian / "control").write_text(
        f"Package: {PACKAGE}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n"
        f"Installed-Size: {installed_size_kib(root)}\nDepends: {', '.join(depends)}\n"
        f"Recommends: {', '.join(recommends)}\nSection: net\nPriority: optional\n"
        f"Description: {DESCRIPTION}\n"
    )
    (debian / "conffiles").write_text(f"/{CONFFILE}\n")
    sums = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        if debian not in path.parents:
            sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.relative_to(root)}\n")
    (debian / "md5sums").write_text("".join(sums))
    for script in ("postinst", "prerm", "postrm"):
        shutil.copyfile(HERE / script, debian / script)
        (debian / script).chmod(0o755)
    for name in ("control", "conffiles", "md5sums"):
        (debian / name).chmod(0o644)


if __name__ == "__main__":
    sys.exit(main())
