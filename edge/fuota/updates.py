"""Starting module updates: what `fieldpost modules update` and the panel's Modules page both call,
so the checks, the package, the audit and the estimate are the same wherever an update starts.

``plan`` builds every module's package and estimate and refuses (UpdateError, naming the module)
before anything is queued; ``queue_planned`` stores the packages beside the database and queues
one job per module, each with its audit line, in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from edge.errors import FieldpostError, UpdateError, UpdateRefused
from edge.fuota import air, jobs
from edge.fuota.package import parse_version
from edge.fuota.store import BundleStore

STORE_FOLDER = "firmware"  # beside the database: on the Pi, /var/lib/fieldpost/firmware
PACKAGES_FOLDER = "packages"
DEFAULT_INTERVAL_S = 300


def bundle_store(db_path: Path) -> BundleStore:
    return BundleStore(Path(db_path).parent / STORE_FOLDER)


@dataclass(frozen=True)
class Planned:
    device_id: str
    board: str
    transport: str  # "serial": a bridge; "air": a node
    running: str | None
    version: str
    kind: str  # "full", or "delta from <version>"
    data: bytes
    estimate: dict | None  # air only: air_estimate's

    def summary(self) -> dict:
        """What an operator reviews of it (CLI --json, the panel's review)."""
        return {
            "device_id": self.device_id,
            "from": self.running,
            "to": self.version,
            "kind": self.kind,
            "bytes": len(self.data),
            "transport": self.transport,
        }


def plan(
    conn: sqlite3.Connection,
    store: BundleStore,
    *,
    device_ids: tuple[str, ...] | list[str] = (),
    board: str | None = None,
    version: str,
    full: bool = False,
    dr: int = 0,
    energy_mah_day: float = 0.0,
) -> list[Planned]:
    """The packages that move these modules (and every registered module of ``board``) to
    ``version``; refused as a whole, naming the module, when one cannot be updated. A node's
    fragment requests keep to ``energy_mah_day`` of its battery ([updates], 0: no limit) when its
    firmware reads an energy pace."""
    rows = conn.execute("SELECT id, board, role, firmware, interval_s FROM devices ORDER BY id").fetchall()
    wanted = [r for r in rows if r[0] in device_ids or (board and r[1] == board)]
    missing = set(device_ids) - {r[0] for r in rows}
    if missing:
        raise UpdateRefused("device", f"no registered module {', '.join(sorted(missing))}")
    if not wanted:
        if board:
            raise UpdateRefused("board", f"no registered module of board {board}")
        raise UpdateRefused("device", "name --device or --board")
    busy = {j.device_id for transport in ("serial", "air") for j in jobs.active(conn, transport)}
    out = []
    for dev, dev_board, role, running, interval_s in wanted:
        transport = "serial" if role == "bridge" else "air"
        field = "device" if dev in device_ids else "board"
        if not dev_board:
            raise UpdateRefused(
                field,
                f"{dev} has not said HELLO yet: its board is unknown"
                if role == "bridge"
                else f"{dev}: its board is unknown (given by `fieldpost devices add --board` or provisioning)",
            )
        if dev in busy:
            raise UpdateRefused(field, f"module {dev} already has an update under way (cancel it first)")
        try:
            package_plan, data = store.package_for(dev_board, version, running or None, full=full)
        except UpdateError as exc:
            raise UpdateRefused("version", f"{dev}: {exc}") from exc
        out.append(
            Planned(
                device_id=dev,
                board=dev_board,
                transport=transport,
                running=running or None,
                version=version,
                kind=f"delta from {package_plan.base.version}" if package_plan.base else "full",
                data=data,
                estimate=air_estimate(
                    dev_board,
                    len(data),
                    dr,
                    interval_s or DEFAULT_INTERVAL_S,
                    energy_mah_day=energy_mah_day if paces(running) else 0.0,
                )
                if transport == "air"
                else None,
            )
        )
    return out


def save_package(db_path: Path, data: bytes) -> Path:
    """The package file, named by its SHA-256, beside the database (written once, atomically)."""
    folder = Path(db_path).parent / STORE_FOLDER / PACKAGES_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(data).hexdigest()}.fpup"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def queue_planned(
    conn: sqlite3.Connection,
    planned: list[Planned],
    *,
    db_path: Path,
    max_in_flight: int | None,
    actor: str,
    now: float,
) -> list[dict]:
    """Queue one job per planned module and audit it as ``actor`` (in the caller's transaction);
    what was queued, per module, as `modules update --json` prints it."""
    from edge.registry import audit  # edge.registry imports the store, which must not import us

    report = []
    for p in planned:
        path = save_package(db_path, p.data)
        job_id = jobs.queue(
            conn,
            p.device_id,
            board=p.board,
            version=p.version,
            from_version=p.running,
            package=str(path),
            sha256=path.stem,
            size=len(p.data),
            now=now,
            transport=p.transport,
            max_in_flight=max_in_flight if p.transport == "air" else None,
            pace=_pace_of(p),
        )
        audit(
            conn,
            actor=actor,
            action="module.update",
            target=p.device_id,
            detail={
                "from": p.running,
                "to": p.version,
                "bytes": len(p.data),
                "job": job_id,
                "transport": p.transport,
            },
            now=now,
        )
        entry: dict = {"job": job_id, **p.summary()}
        if p.transport == "air":
            entry["estimate"] = p.estimate
        report.append(entry)
    return report


def _pace_of(p: Planned) -> tuple[int, int] | None:
    pace = (p.estimate or {}).get("pace") if p.transport == "air" else None
    return (pace["gap_s"], pace["burst"]) if pace else None


def paces(running: str | None) -> bool:
    """Whether a node running ``running`` reads an offer's energy pace (unknown: assumed not)."""
    try:
        return running is not None and parse_version(running) >= parse_version(air.PACED_OFFER_FROM)
    except (UpdateError, ValueError):
        return False


def air_estimate(
    board: str, size: int, dr: int, interval_s: float, *, energy_mah_day: float = 0.0
) -> dict | None:
    """The airtime, least time and the node's charge of an air update of ``size`` bytes on
    ``board``'s region at ``dr``, for a node reading every ``interval_s`` (edge/fuota/air.py
    estimate), with the pace that keeps it within ``energy_mah_day`` (0: none); None when the
    board or the data rate is not known here. Refused (UpdateRefused) when the allowance cannot
    be kept: less than one request in the longest gap an offer carries."""
    from edge.tools import build_firmware

    try:
        profile = build_firmware.load_profile(board)
    except (FieldpostError, OSError, ValueError):
        return None
    region = profile.get("region", "EU868")
    duty, rates = air.REGIONS.get(region, (None, ()))
    if dr >= len(rates):
        return None
    sf, max_payload = rates[dr]
    try:
        est = air.estimate(
            size,
            sf=sf,
            max_payload=max_payload,
            duty=duty,
            interval_s=interval_s,
            power=profile.get("power"),
            tx_dbm=int((profile.get("radio") or {}).get("tx_power_dbm", 14)),
            allowance_mah_day=energy_mah_day,
        )
    except ValueError as exc:
        raise UpdateRefused("energy_mah_day", f"[updates] energy_mah_day: {exc}") from None
    capacity = (profile.get("battery") or {}).get("capacity_mah")
    if est["energy_mah"] is not None and capacity:
        est["battery_percent"] = round(100 * est["energy_mah"] / capacity, 2)
    return {"region": region, "dr": dr, "sf": sf, **est}


def estimate_text(est: dict | None) -> str:
    """The estimate in words, as the CLI prints it and the panel shows it."""
    if not est:
        return "no estimate (the board's region or the data rate is not known here)"
    return (
        f"{est['chunks']} chunks at DR{est['dr']} ({est['chunks_on_acks']} on readings' ACKs),"
        f" airtime {est['airtime_up_s']:.0f} s up + {est['airtime_down_s']:.0f} s down, "
        + (
            f"at least {duration(est['seconds'])} within the duty cycle"
            + (" and the energy pace" if est.get("pace") else "")
            if est["seconds"] is not None
            else "no room in the duty cycle beside its readings"
        )
        + _energy_text(est)
    )


def _energy_text(est: dict) -> str:
    if est.get("energy_mah") is None:
        return ""  # no datasheet currents for the board
    said = f"; about {est['energy_mah']:.1f} mAh of the node's battery"
    if est.get("battery_percent") is not None:
        said += f" ({est['battery_percent']:g} % of its cell)"
    pace = est.get("pace")
    if pace:
        said += f", at most {pace['burst']} requests at once, then one every {duration(pace['gap_s'])}"
    return said


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
