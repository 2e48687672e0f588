"""Reading the store the way people and the other areas ask: by device id and time, decoded.

Wraps :mod:`edge.store.readings` (rows by id range) with the device-id mapping and the
decoding of raw payloads, so the CLI export, the panel and the rules all read readings the
same way:

    reader = ReadingReader(conn, codecs)
    for reading in reader.device_readings("70b3d57ed0000001", start=t0, end=t1):
        values, error = reader.decode(reading)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from edge.codecs import CodecRunner
from edge.store import readings
from edge.store.decode import Values, battery_of, decode_payload
from edge.store.numbers import Numbers, all_numbers
from edge.store.readings import Reading


class ReadingReader:
    def __init__(
        self, conn: sqlite3.Connection, codecs: CodecRunner | None = None, *, numbers: Numbers | None = None
    ):
        self.conn = conn
        self._codecs = codecs
        self._own_codecs = codecs is None
        self.numbers = numbers or Numbers()
        self._device_codecs: dict[str, str] | None = None

    def close(self) -> None:
        """Stop the codec plug-in worker this reader started, if any."""
        if self._own_codecs and self._codecs is not None:
            self._codecs.close()
            self._codecs = None

    # ------------------------------------------------------------------ rows -> readings

    def reading(self, row: readings.Row) -> Reading:
        rid, ms, port, rssi, snr_q, bridge, skew, raw, age = row
        number, fcnt = readings.split_id(rid)
        return Reading(
            id=rid,
            device_id=self.numbers.device_id(self.conn, number) or f"#{number}",
            fcnt=fcnt,
            port=port,
            received_ms=ms,
            rssi=rssi,
            snr_q=snr_q,
            bridge_id=self.numbers.device_id(self.conn, bridge),
            skew_s=skew,
            raw=bytes(raw),
            age_s=age,
        )

    def _number(self, device_id: str) -> int | None:
        return self.numbers.number(self.conn, device_id)

    # ------------------------------------------------------------------ queries

    def device_readings(
        self, device_id: str, *, start: float | None = None, end: float | None = None, chunk: int = 2000
    ) -> Iterator[Reading]:
        """A device's readings measured in [start, end) (Unix seconds), oldest first."""
        number = self._number(device_id)
        if number is None:
            return
        for row in readings.iter_device(
            self.conn,
            number,
            start_ms=None if start is None else round(start * 1000),
            end_ms=None if end is None else round(end * 1000),
            chunk=chunk,
        ):
            yield self.reading(row)

    def all_readings(self, *, start: float | None = None, end: float | None = None) -> Iterator[Reading]:
        """Every reading in [start, end), device by device (in device-number order), oldest first."""
        for _number, device_id in sorted(all_numbers(self.conn).items()):
            yield from self.device_readings(device_id, start=start, end=end)

    def newest(
        self, device_id: str, *, limit: int = 1, ports: tuple[int, ...] | None = None
    ) -> list[Reading]:
        number = self._number(device_id)
        if number is None:
            return []
        return [self.reading(r) for r in readings.newest(self.conn, number, limit=limit, ports=ports)]

    def by_ids(self, ids: Iterable[int]) -> list[Reading]:
        ids = list(ids)
        out: list[Reading] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            out.extend(
                self.reading(row)
                for row in self.conn.execute(
                    f"SELECT {readings.COLUMNS} FROM readings WHERE id IN ({marks}) ORDER BY id", chunk
                )
            )
        return out

    def count(self, device_id: str | None = None) -> int:
        if device_id is None:
            return readings.stored_count(self.conn)
        number = self._number(device_id)
        if number is None:
            return 0
        return readings.count_between(self.conn, *readings.device_bounds(number))

    # ------------------------------------------------------------------ decoding

    def codec_of(self, device_id: str) -> str:
        if self._device_codecs is None:
            self._device_codecs = {d: c for d, c in self.conn.execute("SELECT id, codec FROM devices")}
        return self._device_codecs.get(device_id, "lpp")

    def decode(self, reading: Reading) -> tuple[Values | None, str | None]:
        """(values, None) or (None, why not): what the reading's raw payload says."""
        if self._codecs is None:
            self._codecs = CodecRunner()
        return decode_payload(self._codecs, self.codec_of(reading.device_id), reading.port, reading.raw)

    def values(self, reading: Reading) -> Values:
        values, _error = self.decode(reading)
        return values or []

    def battery(self, device_id: str, *, scan: int = 5) -> float | None:
        """The battery voltage in the device's newest readings (sensor readings first, then status)."""
        for ports in ((readings.SYNCED_PORTS[0],), (readings.SYNCED_PORTS[1],)):
            for reading in self.newest(device_id, limit=scan, ports=ports):
                volts = battery_of(self.values(reading))
                if volts is not None:
                    return volts
        return None


def reading_dict(reader: ReadingReader, reading: Reading) -> dict[str, Any]:
    """A reading as the API and the panel show it (decoded values included)."""
    values, error = reader.decode(reading)
    return {
        "id": reading.id,
        "device_id": reading.device_id,
        "fcnt": reading.fcnt,
        "port": reading.port,
        "measured_at": reading.measured_at,  # received_at less the age it arrived with
        "received_at": reading.received_at,
        "rssi": reading.rssi,
        "snr": reading.snr,
        "bridge_id": reading.bridge_id,
        "raw": reading.raw.hex(),
        "values": values or [],
        "decode_error": error,
    }
