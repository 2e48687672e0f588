"""Small writers for the tables the rule engine reads (what ingest and the registry would store)."""

from edge.codecs import lpp
from edge.store import transaction
from edge.store.query import ReadingReader
from tests.storekit import put_readings

NODE = "a1b2c3d4e5f60708"
OTHER = "0102030405060708"
# The LPP item each value name is sent as: the channels and types of the standard Fieldpost reading
# (an analog input on channel 3 decodes as "battery"), and LPP's voltage type (decoded as "voltage").
LPP_ITEMS = {
    "temperature": (1, "temperature"),
    "humidity": (2, "humidity"),
    "battery": (3, "analog_input"),
    "voltage": (4, "voltage"),
}


def add_device(conn, device_id=NODE, *, interval_s=60, created_at=0.0, role="node"):
    with transaction(conn):
        conn.execute(
            "INSERT INTO devices (id, key, interval_s, created_at, role) VALUES (?, ?, ?, ?, ?)",
            (device_id, bytes(16), interval_s, created_at, role),
        )


def add_reading(conn, device_id, fcnt, at, **values):
    """Store one sensor reading like ingest does (its values as an LPP payload); returns its id."""
    payload = lpp.encode([(*LPP_ITEMS[name], value) for name, value in values.items()])
    return add_raw_reading(conn, device_id, fcnt, at, payload)


def add_raw_reading(conn, device_id, fcnt, at, payload, *, port=1):
    """Store one reading with this raw payload, moving the device's last_seen as ingest does; returns its id."""
    (rid,) = put_readings(conn, device_id, [fcnt], received_at=at, port=port, raw=payload)
    with transaction(conn):
        conn.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (at, device_id))
    return rid


def decoded(conn, reading_id):
    """(values, error) of a stored reading, decoded as the engine decodes it."""
    reader = ReadingReader(conn)
    try:
        (reading,) = reader.by_ids([reading_id])
        return reader.decode(reading)
    finally:
        reader.close()


def alarm_rows(conn, rule=None):
    sql = "SELECT * FROM alarms" + (" WHERE rule = ?" if rule else "") + " ORDER BY id"
    return conn.execute(sql, (rule,) if rule else ()).fetchall()


def history_states(conn, alarm_id):
    return [
        r[0]
        for r in conn.execute("SELECT state FROM alarm_history WHERE alarm_id = ? ORDER BY id", (alarm_id,))
    ]


class FakeClock:
    """An injected clock the test moves by hand."""

    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now
