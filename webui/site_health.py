"""What the health page shows about the appliance: CPU temperature, load, uptime, the buffer's disk
use, the version. Each reader takes its file paths as arguments, so tests pass their own files;
what a machine does not have (no thermal zone in a VM) is None, shown as "not available"."""

from __future__ import annotations

import importlib.metadata
import os
import sqlite3
from pathlib import Path
from typing import Any

from webui import queries

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
UPTIME = Path("/proc/uptime")


def cpu_temperature_c(path: Path = THERMAL) -> float | None:
    try:
        return int(path.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        return None


def uptime_s(path: Path = UPTIME) -> float | None:
    try:
        return float(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


def version() -> str:
    try:
        return importlib.metadata.version("fieldpost")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def snapshot(db_path: str, *, thermal: Path = THERMAL, uptime: Path = UPTIME) -> dict[str, Any]:
    return {
        "cpu_temp_c": cpu_temperature_c(thermal),
        "load": load_average(),
        "cpus": os.cpu_count() or 1,
        "uptime_s": uptime_s(uptime),
        "disk": queries.buffer_disk(db_path),
        "version": version(),
    }


def backup_to(conn: sqlite3.Connection, target: str) -> int:
    """A consistent copy of the database (SQLite's online backup: ingest goes on meanwhile) at
    ``target``; returns its size."""
    out = sqlite3.connect(target)
    try:
        conn.backup(out, pages=1024)
    finally:
        out.close()
    return os.path.getsize(target)
