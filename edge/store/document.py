"""The JSON document of a reading: what the cloud receives and what ``db export --format json`` writes.

    {"id": "<dev>:<fcnt>", "device": "<dev>", "fcnt": n, "ts": received_at, "port": p,
     "values": [{"channel": c, "name": "temperature", "value": 21.5, "unit": "°C"}, ...],
     "raw": "<hex>", "rssi": r, "snr": s, "bridge": "<bridge id>"}

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
) -> str:
    """The document as JSON text; ``values`` may already be JSON text (CodecRunner.decode_json)."""
    # Device and bridge ids are 16 hex digits (checked at registration): no escaping needed.
    bridge = "null" if bridge_id is None else f'"{bridge_id}"'
    snr = "null" if snr_q is None else repr(snr_q / 4)
    values_text = values if isinstance(values, str) else _dumps(values or [])
    return (
        f'{{"id":"{device_id}:{fcnt}","device":"{device_id}","fcnt":{fcnt},"ts":{received_ms / 1000!r},'
        f'"port":{port},"values":{values_text},"raw":"{bytes(raw).hex()}",'
        f'"rssi":{"null" if rssi is None else int(rssi)},"snr":{snr},"bridge":{bridge}}}'
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
) -> dict[str, Any]:
    return {
        "id": f"{device_id}:{fcnt}",
        "device": device_id,
        "fcnt": fcnt,
        "ts": received_ms / 1000,
        "port": port,
        "values": values or [],
        "raw": bytes(raw).hex(),
        "rssi": rssi,
        "snr": None if snr_q is None else snr_q / 4,
        "bridge": bridge_id,
    }
