"""The JSON document of a reading: what the cloud receives and what ``db export --format json`` writes.

    {"id": "<dev>:<fcnt>", "device": "<dev>", "fcnt": n, "ts": measured_at, "port": p,
     "values": [{"channel": c, "name": "temperature", "value": 21.5, "unit": "°C"}, ...],
     "raw": "<hex>", "rssi": r, "snr": s, "bridge": "<bridge id>"[, "received": received_at]}

``ts`` is when the reading was measured: its receive time less the age it arrived with
(docs/radio.md 0.9). A reading that waited on its module also carries ``received``, the edge's
receive time; for a fresh one the two are the same and ``received`` is left out.

Built as text straight from a stored row and its decoded values (sync sends many thousands
a second: no intermediate dict for the whole document).
"""

from __future__ import annotations

import json
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def reading_json(
    device_id: str,
    fcnt: int,
    received_ms: int,
    port: int,
    values: list[dict[str, Any]] | str | None,
    raw: bytes,
    rssi: int | None,
    snr_q: int | None,
    bridge_id: str | None,
    age_s: int | None = None,
) -> str:
    """The document as JSON text; ``values`` may already be JSON text (CodecRunner.decode_json)."""
    # Device and bridge ids are 16 hex digits (checked at registration): no escaping needed.
    bridge = "null" if bridge_id is None else f'"{bridge_id}"'
    snr = "null" if snr_q is None else repr(snr_q / 4)
    values_text = values if isinstance(values, str) else _dumps(values or [])
    ts = (received_ms - 1000 * age_s) / 1000 if age_s else received_ms / 1000
    received = f',"received":{received_ms / 1000!r}' if age_s else ""
    return (
        f'{{"id":"{device_id}:{fcnt}","device":"{device_id}","fcnt":{fcnt},"ts":{ts!r},'
        f'"port":{port},"values":{values_text},"raw":"{bytes(raw).hex()}",'
        f'"rssi":{"null" if rssi is None else int(rssi)},"snr":{snr},"bridge":{bridge}{received}}}'
    )


def reading_document(
    device_id: str,
    fcnt: int,
    received_ms: int,
    port: int,
    values: list[dict[str, Any]] | None,
    raw: bytes,
    rssi: int | None,
    snr_q: int | None,
    bridge_id: str | None,
    age_s: int | None = None,
) -> dict[str, Any]:
    doc = {
        "id": f"{device_id}:{fcnt}",
        "device": device_id,
        "fcnt": fcnt,
        "ts": (received_ms - 1000 * age_s) / 1000 if age_s else received_ms / 1000,
        "port": port,
        "values": values or [],
        "raw": bytes(raw).hex(),
        "rssi": rssi,
        "snr": None if snr_q is None else snr_q / 4,
        "bridge": bridge_id,
    }
    if age_s:
        doc["received"] = received_ms / 1000
    return doc
