"""Firmware updates of bridges over their serial link (docs/updates.md, docs/protocol.md section 2).

The link manager calls :meth:`SerialUpdates.poll` with the bridges whose link is up, and hands
over the ACKs and refusals of the frames sent here. Per module with an active update:

    UPDATE_OFFER -> ACK {"have": n}: the module already holds n bytes (a resumed transfer)
    UPDATE_CHUNK from n on, as many as the link's window takes, refilled as ACKs come back
    UPDATE_COMMIT (SHA-256 + MIC with the module's key) -> ACK {"staged": version}
    the module reboots; its next HELLO says which version runs: done, or rolled back.

The link delivers frames in order and once, so chunks need no per-chunk answer beyond the ACK.
Nothing here blocks the link: progress is written through the ingest writer (``submit``), the
active updates are read through a read-only connection of their own (``read``).
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.fuota import jobs
from edge.link.frame import MAX_PAYLOAD, FrameType
from edge.logs import kv
from edge.store.connection import LazyReader

log = logging.getLogger("fieldpost.fuota")

CHUNK = MAX_PAYLOAD - 4  # the offset takes 4 bytes of the frame
COMMIT_LABEL = b"FPUP-COMMIT"  # firmware/fp/update_rx.py
PROGRESS_EVERY = 16  # chunks between progress rows (the module keeps its own record)
MAX_FAILURES = 5  # refused offers/chunks/commits in a row before the update is marked failed
STAGED_TIMEOUT_S = 600.0  # a staged update whose module never says HELLO again has failed
READ_EVERY_S = 2.0


def commit_payload(sha256_hex: str, key: bytes) -> bytes:
    digest = bytes.fromhex(sha256_hex)
    return digest + hmac.digest(key, COMMIT_LABEL + digest, "sha256")[:4]


_GENERATIONS = itertools.count(1)


@dataclass
class _Transfer:
    job: jobs.Job
    data: bytes
    key: bytes
    port: Any
    phase: str = "offer"  # offer -> chunks -> commit -> staged
    next: int = 0  # next offset to send
    acked: int = 0  # bytes the module acknowledged
    chunks_since_progress: int = 0
    failures: int = 0
    # Frames of an earlier transfer are resent by the link in a new session, ahead of the new
    # offer: their answers must not count for this one (tokens carry the generation).
    gen: int = field(default_factory=lambda: next(_GENERATIONS))


class SerialUpdates:
    def __init__(
        self,
        *,
        read: Callable[[], tuple[list[jobs.Job], dict[str, bytes]]],
        submit: Callable[[Callable[[Any, float], None]], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self._read = read  # -> (active jobs, {device id: key})
        self._submit = submit
        self._clock = clock
        self._lock = threading.Lock()
        self._transfers: dict[str, _Transfer] = {}
        self._jobs: dict[str, jobs.Job] = {}
        self._keys: dict[str, bytes] = {}
        self._read_at = float("-inf")
        self._staged_since: dict[int, float] = {}

    # --- from the link manager's supervisor -----------------------------------------------

    def poll(self, links: dict[str, Any]) -> None:
        now = self._clock()
        if now - self._read_at >= READ_EVERY_S:
            self._read_at = now
            active, keys = self._read()
            with self._lock:
                self._jobs = {j.device_id: j for j in active}
                self._keys = keys
                for dev in [d for d, t in self._transfers.items() if self._jobs.get(d, t.job).id != t.job.id]:
                    del self._transfers[dev]  # cancelled or ended meanwhile
                for dev in [d for d in self._transfers if d not in self._jobs]:
                    del self._transfers[dev]
        with self._lock:
            for dev, job in list(self._jobs.items()):
                if job.state == "staged":
                    since = self._staged_since.setdefault(job.id, now)
                    if now - since > STAGED_TIMEOUT_S:
                        self._end(
                            job, "failed", f"no HELLO from the module {STAGED_TIMEOUT_S:.0f} s after staging"
                        )
                    continue
                port = links.get(dev)
                if port is None:
                    continue
                t = self._transfers.get(dev)
                if t is None or t.port is not port:
                    t = self._start(job, port)
                    if t is None:
                        continue
                if t.phase == "chunks":
                    self._fill(dev, t)

    def session_started(self, peer: dict[str, Any]) -> None:
        """A module said HELLO: a staged update of it ends here (its version says how)."""
        dev = peer.get("id")
        if not isinstance(dev, str):
            return  # a HELLO without an id: nothing of ours to end
        with self._lock:
            job = self._jobs.get(dev)
            transfer = self._transfers.pop(dev, None)
            if job is None:
                return
            if peer.get("fw") == job.version:
                self._end(job, "done", None)
                return
            reported = peer.get("upd")
            upd = reported if isinstance(reported, dict) else {}
            if upd.get("result") == "rolled back" and upd.get("to") == job.version:
                self._end(
                    job, "rolled_back", f"the module went back to {peer.get('fw')}: {upd.get('why', '')}"
                )
            elif transfer is not None and transfer.phase == "staged":
                # staged, but the module came back before swapping: keep waiting for its reboot
                self._transfers[dev] = transfer

    # --- from the port's reader thread ----------------------------------------------------

    def acked(self, token: tuple, result: bytes) -> None:
        _, dev, kind, gen, *rest = token
        with self._lock:
            t = self._transfers.get(dev)
            if t is None or t.gen != gen:
                return
            t.failures = 0
            if kind == "offer":
                try:
                    have = int(json.loads(result)["have"])
                except (ValueError, KeyError, TypeError):
                    have = -1
                if not 0 <= have <= len(t.data):
                    self._fail_step(dev, t, f"offer answered {result[:60]!r}")
                    return
                t.phase, t.next, t.acked = "chunks", have, have
                self._note_progress(t.job.id, have)
                log.info(
                    "update resumed %s", kv(device=dev, version=t.job.version, have=have, size=len(t.data))
                )
                self._fill(dev, t)
            elif kind == "chunk":
                t.acked = max(t.acked, rest[0])
                t.chunks_since_progress += 1
                if t.chunks_since_progress >= PROGRESS_EVERY:
                    t.chunks_since_progress = 0
                    self._note_progress(t.job.id, t.acked)
                self._fill(dev, t)
            elif kind == "commit":
                t.phase = "staged"
                job_id = t.job.id
                self._submit(lambda conn, now: jobs.staged(conn, job_id, now=now))
                log.info("update staged %s", kv(device=dev, version=t.job.version, answer=result[:60]))

    def refused(self, token: tuple, reason: str, text: str) -> None:
        _, dev, kind, gen, *_ = token
        with self._lock:
            t = self._transfers.get(dev)
            if t is None or t.gen != gen:
                return
            why = f"{kind} refused: {reason}" + (f" ({text})" if text else "")
            if kind == "commit" and "stage:" in text:
                self._end(t.job, "failed", why)  # the module checked the package and said no
                return
            self._fail_step(dev, t, why)

    # --- inside the lock ------------------------------------------------------------------------

    def _start(self, job: jobs.Job, port: Any) -> _Transfer | None:
        key = self._keys.get(job.device_id)
        try:
            data = Path(job.package).read_bytes()
        except OSError as exc:
            self._end(job, "failed", f"package {job.package}: {exc.strerror}")
            return None
        if key is None or len(data) != job.size:
            self._end(job, "failed", "module unregistered" if key is None else "package changed on disk")
            return None
        t = _Transfer(job, data, key, port)
        self._transfers[job.device_id] = t
        offer = json.dumps({"id": job.sha256, "size": job.size, "v": job.version}).encode()
        if not port.can_send():
            del self._transfers[job.device_id]
            return None
        port.send(FrameType.UPDATE_OFFER, offer, ("update", job.device_id, "offer", t.gen))
        return t

    def _fill(self, dev: str, t: _Transfer) -> None:
        port = t.port
        while t.next < len(t.data) and not port.closed.is_set() and port.can_send():
            end = min(t.next + CHUNK, len(t.data))
            payload = t.next.to_bytes(4, "big") + t.data[t.next : end]
            port.send(FrameType.UPDATE_CHUNK, payload, ("update", dev, "chunk", t.gen, end))
            t.next = end
        if t.acked == len(t.data) and t.phase == "chunks":
            t.phase = "commit"
            self._note_progress(t.job.id, t.acked)
            port.send(
                FrameType.UPDATE_COMMIT,
                commit_payload(t.job.sha256, t.key),
                ("update", dev, "commit", t.gen),
            )

    def _fail_step(self, dev: str, t: _Transfer, why: str) -> None:
        t.failures += 1
        log.warning(
            "update step refused %s", kv(device=dev, version=t.job.version, why=why, attempt=t.failures)
        )
        if t.failures >= MAX_FAILURES:
            self._end(t.job, "failed", why)
        else:
            del self._transfers[dev]  # the next poll offers again and resumes from the module's record

    def _note_progress(self, job_id: int, sent: int) -> None:
        self._submit(lambda conn, now: jobs.progress(conn, job_id, sent, now=now))

    def _end(self, job: jobs.Job, state: str, error: str | None) -> None:
        self._transfers.pop(job.device_id, None)
        self._jobs.pop(job.device_id, None)
        log.log(
            logging.INFO if state == "done" else logging.WARNING,
            "update ended %s",
            kv(device=job.device_id, version=job.version, state=state, error=error),
        )
        self._submit(lambda conn, now: jobs.finish(conn, job.id, state, error=error, now=now))


class ActiveUpdates:
    """``read()`` for SerialUpdates: the active updates and their modules' keys, through a read-only
    connection of its own (a WAL reader costs the ingest writer nothing)."""

    def __init__(self, db_path: str | Path):
        self._reader = LazyReader(db_path)

    def __call__(self) -> tuple[list[jobs.Job], dict[str, bytes]]:
        conn = self._reader.conn
        active = jobs.active(conn)
        keys = {}
        for job in active:
            row = conn.execute("SELECT key FROM devices WHERE id = ?", (job.device_id,)).fetchone()
            if row is not None:
                keys[job.device_id] = bytes(row[0])
        return active, keys

    def close(self) -> None:
        self._reader.close()
