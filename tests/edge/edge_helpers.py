"""Builders shared by the edge tests: registered devices and the UPLINK payloads they send."""

from __future__ import annotations

from edge import registry
from edge.codecs import lpp
from edge.lorawan.network import Network
from edge.lorawan.settings import LoRaWANSettings
from edge.radio import build_serial_uplink, build_uplink

STANDARD = [(1, "temperature", 21.5), (2, "humidity", 55.0), (3, "voltage", 3.7)]


def add(db, device_id: str, *, now: float = 1_700_000_000.0, codec: str = "lpp") -> bytes:
    return registry.add_device(db, device_id, codec=codec, actor="test", now=now)


def v1_network() -> Network:
    """An edge that takes Fieldpost v1 frames from nodes that never joined ([lorawan] accept_v1 =
    true; the default refuses them): for the tests about what the edge does with v1 frames."""
    return Network(LoRaWANSettings(accept_v1=True))


def uplink(
    key: bytes,
    device_id: str,
    fcnt: int,
    *,
    port: int = 1,
    payload: bytes | None = None,
    rssi: int = -80,
    snr: float = 7.25,
    rx_time: int = 1_700_000_000,
) -> bytes:
    """A serial UPLINK payload: receive metadata + a Fieldpost v1 radio frame signed with ``key``
    (taken by an edge with accept_v1, ``v1_network``)."""
    if payload is None:
        payload = lpp.encode(STANDARD)
    return build_serial_uplink(
        build_uplink(key, device_id, fcnt, port, payload), rssi=rssi, snr=snr, rx_time=rx_time
    )


def stored(db, device_id: str | None = None) -> list:
    """The readings stored (edge.store.readings.Reading), oldest first, of one device or all."""
    from edge.store.query import ReadingReader

    reader = ReadingReader(db)
    try:
        if device_id is None:
            return list(reader.all_readings())
        return list(reader.device_readings(device_id))
    finally:
        reader.close()


def decoded(db, reading):
    """(values, error) of a stored reading, decoded as every reader of the store decodes it."""
    from edge.store.query import ReadingReader

    reader = ReadingReader(db)
    try:
        return reader.decode(reading)
    finally:
        reader.close()


def queue_update(
    conn,
    tmp_path,
    device_id: str,
    data: bytes,
    *,
    transport: str = "air",
    max_in_flight: int | None = None,
    now: float = 0.0,
    pace: tuple[int, int] | None = None,
) -> int:
    """A firmware update of ``device_id`` queued with ``data`` as its package (written under
    ``tmp_path`` by its SHA-256, as the edge keeps packages); the job's id."""
    import hashlib

    from edge.fuota import jobs

    digest = hashlib.sha256(data).hexdigest()
    path = tmp_path / f"{digest}.fpup"
    path.write_bytes(data)
    return jobs.queue(
        conn,
        device_id,
        board="unix",
        version="9.9.0",
        from_version="0.3.0",
        package=str(path),
        sha256=digest,
        size=len(data),
        now=now,
        transport=transport,
        max_in_flight=max_in_flight,
        pace=pace,
    )
