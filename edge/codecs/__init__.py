"""Payload codecs: Cayenne LPP built in, custom codecs as plug-ins.

The built-in ``json`` reads a JSON object of numbers and text (edge.codecs.jsonvalues), for
devices with factory firmware; ``chirpstack`` is the same for ChirpStack devices whose readings are
the object ChirpStack's own codec decoded (edge.sources). The built-in ``lpp`` is Cayenne LPP with the Fieldpost channel convention (an analog
input on channel 3 is the battery, in V). A plug-in is an entry point in the group ``fieldpost.codecs`` whose name is what a
device's ``codec`` column says. It loads to either a callable ``decode(payload:
bytes, port: int) -> list[dict]`` or an object with such a ``decode`` method. Each
dict needs ``name`` and ``value``; ``channel`` (int) and ``unit`` (str) are
optional. Plug-ins run in a separate worker process with a time limit: a codec that
loops forever is killed, the reading keeps its raw payload and records the error.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import threading
import time
from importlib.metadata import entry_points
from typing import Any

from edge.codecs import jsonvalues, lpp

log = logging.getLogger("fieldpost.codecs")

ENTRY_POINT_GROUP = "fieldpost.codecs"
_json_text = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
BUILTIN = ("lpp", "json", "chirpstack", "raw")


class CodecError(ValueError):
    """A codec failed or returned something that is not a list of values."""


def available() -> list[str]:
    """Names a device's ``codec`` may take: the built-ins and every installed plug-in."""
    return sorted(set(BUILTIN) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def normalise(values: Any) -> list[dict[str, Any]]:
    """Check a codec's output and bring it to {channel, name, value, unit}."""
    if not isinstance(values, list):
        raise CodecError(f"codec returned {type(values).__name__}, expected a list of values")
    out = []
    for i, item in enumerate(values):
        if not isinstance(item, dict):
            raise CodecError(f"value {i} is {type(item).__name__}, expected an object")
        name, value = item.get("name"), item.get("value")
        if not isinstance(name, str) or not name:
            raise CodecError(f"value {i} has no name")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise CodecError(f"value {i} ({name}) is {type(value).__name__}, expected a number or text")
        if isinstance(value, float) and not math.isfinite(value):
            raise CodecError(f"value {i} ({name}) is not finite")
        channel = item.get("channel", 0)
        unit = item.get("unit", "")
        if isinstance(channel, bool) or not isinstance(channel, int):
            raise CodecError(f"value {i} ({name}) has a channel that is not an integer")
        if not isinstance(unit, str):
            raise CodecError(f"value {i} ({name}) has a unit that is not text")
        out.append({"channel": channel, "name": name, "value": value, "unit": unit})
    return out


def _load(name: str):
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        raise CodecError(f"no codec plug-in named {name!r} (entry point group {ENTRY_POINT_GROUP})")
    target = matches[0].load()
    return getattr(target, "decode", target)


def _worker_main(pipe) -> None:
    # Runs in the codec worker process: decode requests until the pipe closes.
    loaded: dict[str, Any] = {}
    while True:
        try:
            name, port, payload = pipe.recv()
        except (EOFError, OSError):
            return
        try:
            if name not in loaded:
                loaded[name] = _load(name)
            pipe.send(("ok", normalise(loaded[name](bytes(payload), port))))
        except Exception as exc:  # a plug-in may raise anything; report it, keep serving
            pipe.send(("error", f"{type(exc).__name__}: {exc}"))


class CodecRunner:
    """Decodes payloads for whoever reads readings (sync, rules, panel, export). Thread-safe: plug-in
    calls take turns on the one worker process; the built-in codecs run in the caller's thread."""

    def __init__(self, *, timeout_s: float = 1.0):
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._ctx = multiprocessing.get_context("spawn")
        self._proc = None
        self._pipe = None
        self.timeouts = 0

    def decode(self, codec: str, port: int, payload: bytes) -> tuple[list[dict[str, Any]] | None, str | None]:
        """Return (values, None) or (None, error text). Never raises."""
        try:
            if codec == "lpp":
                return lpp.decode(payload, analog_channels=lpp.FIELDPOST_ANALOG_CHANNELS), None
            if codec == "raw":
                return [], None
            if codec in ("json", "chirpstack"):  # chirpstack: the reading is ChirpStack's decoded object
                return jsonvalues.decode(payload), None
            with self._lock:
                return self._decode_plugin(codec, port, payload), None
        except (CodecError, lpp.LppError, jsonvalues.JsonPayloadError) as exc:
            return None, f"{codec}: {exc}"

    def decode_json(self, codec: str, port: int, payload: bytes) -> tuple[str | None, str | None]:
        """Like :meth:`decode`, with the values as compact JSON text (what sync sends): the
        built-in LPP codec writes the text directly, without a dict per value."""
        if codec == "lpp":
            try:
                return lpp.decode_json(payload, analog_channels=lpp.FIELDPOST_ANALOG_CHANNELS), None
            except lpp.LppError as exc:
                return None, f"{codec}: {exc}"
        values, error = self.decode(codec, port, payload)
        return (None, error) if values is None else (_json_text(values), None)

    def _decode_plugin(self, codec: str, port: int, payload: bytes) -> list[dict[str, Any]]:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        self._pipe.send((codec, port, bytes(payload)))
        if not self._pipe.poll(self.timeout_s):
            self.timeouts += 1
            log.warning("codec timeout codec=%s limit_s=%s action=restart_worker", codec, self.timeout_s)
            self._stop()
            raise CodecError(f"timed out after {self.timeout_s} s")
        try:
            status, result = self._pipe.recv()
        except (EOFError, OSError):
            self._stop()
            raise CodecError("codec worker died") from None
        if status != "ok":
            raise CodecError(result)
        return result

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(
            target=_worker_main, args=(child,), name="fieldpost-codec", daemon=True
        )
        self._proc.start()
        child.close()
        self._pipe = parent

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(timeout=5)
        if self._pipe is not None:
            self._pipe.close()
        self._proc = self._pipe = None

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._proc is not None:
            deadline = time.monotonic() + 1
            self._pipe.close()
            self._proc.join(timeout=max(0, deadline - time.monotonic()))
            self._stop()
