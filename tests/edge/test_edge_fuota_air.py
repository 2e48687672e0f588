"""The edge's half of node updates over the air (edge/fuota/air.py) on a real SQLite store: which
nodes get an offer (max in flight), what answers a fragment request, which chunk rides on a
reading's ACK (the request's bitmap), and how the node's results end the job."""

from __future__ import annotations

import hashlib
import json

import pytest

from edge import registry
from edge.errors import UpdateRefused
from edge.fuota import air, energy, jobs
from edge.store import connect, migrate
from tests.edge.edge_helpers import queue_update

NODES = ["0123456789abcd01", "0123456789abcd02", "0123456789abcd03"]
CHUNK = 20


@pytest.fixture
def conn(tmp_path):
    c = connect(tmp_path / "fp.db")
    migrate(c)
    for dev in NODES:
        registry.add_device(c, dev, key=bytes(16), board="unix", actor="test", now=0)
    yield c
    c.close()


def _queue(conn, tmp_path, dev: str, data: bytes, *, max_in_flight: int | None = None) -> int:
    return queue_update(conn, tmp_path, dev, data, max_in_flight=max_in_flight)


def _request(data: bytes, first: int, missing_after: set[int]) -> bytes:
    bitmap = sum(1 << (i - first - 1) for i in missing_after if first < i <= first + 16)
    pid = bytes.fromhex(hashlib.sha256(data).hexdigest())[:4]
    return pid + bytes((CHUNK,)) + first.to_bytes(2, "big") + bitmap.to_bytes(2, "big")


def test_max_in_flight_holds_queued_updates_back(conn, tmp_path):
    data = bytes(range(200))
    ids = [_queue(conn, tmp_path, dev, data, max_in_flight=2) for dev in NODES]
    offered = air.offers(conn, set(NODES), now=1)
    assert sorted(offered) == NODES[:2]
    assert all(port == air.PORT and body[0] == air.OFFER for port, body in offered.values())
    assert [jobs.get(conn, i).state for i in ids] == ["sending", "sending", "queued"]
    # one ends (staged counts as in flight, done does not): the third starts at its next reading
    jobs.staged(conn, ids[0], now=2)
    assert NODES[2] not in air.offers(conn, {NODES[2]}, now=2)
    jobs.finish(conn, ids[0], "done", now=3)
    assert NODES[2] in air.offers(conn, {NODES[2]}, now=3)


def test_requests_are_answered_and_readings_acks_carry_the_chunks_still_missing(conn, tmp_path):
    data = bytes(range(256)) * 2  # 512 bytes: 26 chunks of 20
    job_id = _queue(conn, tmp_path, NODES[0], data)
    # before any request the node may not hold the offer: the ACK carries it
    port, body = air.offers(conn, {NODES[0]}, now=1)[NODES[0]]
    assert port == air.PORT and body == air.offer_payload(jobs.get(conn, job_id))
    # it asks for chunk 0; of the next ones it holds 2 and 4 (out of order: an earlier loss)
    port, body = air.answer(conn, NODES[0], _request(data, 0, set(range(1, 26)) - {2, 4}), now=2)
    assert (port, body) == (air.PORT_FRAG, b"\x00\x00" + data[:CHUNK])
    assert jobs.get(conn, job_id).sent == 2 * CHUNK  # the two it holds, as its request shows
    pushed = [air.offers(conn, {NODES[0]}, now=3 + k)[NODES[0]] for k in range(3)]
    assert [int.from_bytes(b[:2], "big") for _, b in pushed] == [1, 3, 5]
    assert all(p == air.PORT_FRAG for p, _ in pushed)
    assert pushed[1][1][2:] == data[3 * CHUNK : 4 * CHUNK]
    # a new request starts the pushing over from what it shows
    air.answer(conn, NODES[0], _request(data, 24, {25}), now=9)
    port, body = air.offers(conn, {NODES[0]}, now=10)[NODES[0]]
    assert (port, body[:2]) == (air.PORT_FRAG, b"\x00\x19") and body[2:] == data[25 * CHUNK :]
    # nothing left to push: the offer again (a node that lost its transfer starts over)
    assert air.offers(conn, {NODES[0]}, now=11)[NODES[0]][0] == air.PORT


def test_a_request_for_no_update_under_way_gets_a_stop_and_a_bad_one_an_error(conn, tmp_path):
    data = bytes(100)
    job_id = _queue(conn, tmp_path, NODES[0], data)
    air.offers(conn, {NODES[0]}, now=1)
    jobs.cancel(conn, NODES[0], now=2)
    port, body = air.answer(conn, NODES[0], _request(data, 0, set()), now=3)
    assert (port, body) == (air.PORT, b"\x00" + bytes.fromhex(jobs.get(conn, job_id).sha256)[:4])
    with pytest.raises(air.RequestError, match="fragment request of 3 bytes"):
        air.answer(conn, NODES[0], b"abc", now=4)


def test_a_request_beyond_the_package_is_refused(conn, tmp_path):
    data = bytes(100)
    _queue(conn, tmp_path, NODES[0], data)
    air.offers(conn, {NODES[0]}, now=1)
    with pytest.raises(air.RequestError, match="chunk 5 of 5"):
        air.answer(conn, NODES[0], _request(data, 5, set()), now=2)


def test_the_nodes_results_end_the_job_and_name_its_version(conn, tmp_path):
    ids = [_queue(conn, tmp_path, dev, bytes([k]) * 50) for k, dev in enumerate(NODES)]
    air.offers(conn, set(NODES), now=1)

    def result(dev, **doc):
        air.apply_result(conn, dev, json.dumps(doc).encode(), now=2)

    result(NODES[0], r="staged", v="0.3.0")
    assert jobs.get(conn, ids[0]).state == "staged"
    result(NODES[0], r="updated", v="9.9.0")
    result(NODES[1], r="refused", v="0.3.0", w="package_hash")
    result(NODES[2], r="staged", v="0.3.0")
    result(NODES[2], r="rolled_back", v="0.3.0", w="not_confirmed")
    states = [(jobs.get(conn, i).state, jobs.get(conn, i).error) for i in ids]
    assert states == [
        ("done", None),
        ("failed", "the node refused the package: package hash"),
        ("rolled_back", "the node went back to 0.3.0: not confirmed"),
    ]
    firmware = dict(conn.execute("SELECT id, firmware FROM devices"))
    assert firmware == {NODES[0]: "9.9.0", NODES[1]: "0.3.0", NODES[2]: "0.3.0"}
    air.apply_result(conn, NODES[0], b"not json", now=3)  # stored as received, nothing changes


def test_estimate_from_the_region_and_the_readings_room():
    est = air.estimate(5400, sf=7, max_payload=222, duty=0.01)
    assert (est["chunks"], est["chunk_bytes"]) == (27, 207)
    slow = air.estimate(5400, sf=12, max_payload=51, duty=0.01)
    assert slow["chunks"] == 150 and slow["seconds"] > 20 * est["seconds"]
    # readings every 20 s at SF12 need more than the whole budget: no room for an update
    assert air.estimate(5400, sf=12, max_payload=51, duty=0.01, interval_s=20)["seconds"] is None


HELTEC_V3_POWER = {  # hardware/boards/heltec_v3.json "power": the datasheet currents
    "mcu_ma": {"active": 40, "light": 0.24, "deep": 0.008},
    "radio_ma": {"tx": {"14": 45, "22": 118}, "rx": 4.6, "standby": 0.6, "sleep": 0.0006},
    "board_ma": 0.0,
    "wake_ms": 1000,
}


def test_a_fragment_exchange_costs_what_the_datasheet_currents_say():
    request_ms, chunk_ms = air.time_on_air_ms(13 + 9, 7), air.time_on_air_ms(13 + 2 + 207, 7)
    got = energy.exchange_mas(HELTEC_V3_POWER, tx_dbm=14, request_ms=request_ms, chunk_ms=chunk_ms)
    # by hand: awake for the wake (1 s), the request, the receive delay (1 s) and the chunk at 40 mA;
    # TX at +14 dBm 45 mA; standby 0.6 mA through the wake and the delay; RX 4.6 mA for the chunk
    tx_s, rx_s = request_ms / 1000, chunk_ms / 1000
    by_hand = 40 * (1 + tx_s + 1 + rx_s) + 45 * tx_s + 0.6 * 2 + 4.6 * rx_s
    assert got == pytest.approx(by_hand) and 95 < got < 110  # about 0.028 mAh
    # at +22 dBm the 118 mA point applies; a higher request than any point: the highest
    hot = energy.exchange_mas(HELTEC_V3_POWER, tx_dbm=22, request_ms=request_ms, chunk_ms=chunk_ms)
    assert hot - got == pytest.approx((118 - 45) * tx_s)
    assert energy.tx_ma(HELTEC_V3_POWER, 30) == 118 and energy.tx_ma(HELTEC_V3_POWER, 2) == 45


def test_the_pace_spends_a_days_allowance_at_most():
    pace = energy.pace(10.0, 90.0)  # 10 mAh a day, 90 mA x s (0.025 mAh) a request: 400 a day
    assert pace == energy.Pace(gap_s=288, burst=100)  # a quarter at once, the rest spread
    # the most any 24 hours can hold (a full bucket, then its refill) costs the allowance, no more
    assert pace.requests_by(86400) * 90 / 3600 == pytest.approx(10.0)
    for allowance, charge in ((10.0, 101.5), (0.3, 101.5), (250.0, 30.0), (0.1, 101.5)):
        p = energy.pace(allowance, charge)
        assert p is not None and p.requests_by(86400) * charge / 3600 <= allowance + 1e-9, (allowance, p)
    assert energy.pace(0, 90.0) is None and energy.pace(10.0, 0) is None
    with pytest.raises(ValueError, match="under two fragment requests"):
        energy.pace(0.05, 135.0)
    with pytest.raises(ValueError, match="one request every 86400 s"):
        energy.pace(0.075, 135.0)


def test_the_estimate_counts_the_nodes_charge_and_keeps_the_pace():
    # US915 has no duty cycle: without an energy limit a node's requests go one after the other
    free = air.estimate(89000, sf=10, max_payload=11 + 2 + 13 + 40, duty=None, power=HELTEC_V3_POWER)
    paced = air.estimate(
        89000, sf=10, max_payload=11 + 2 + 13 + 40, duty=None, power=HELTEC_V3_POWER, allowance_mah_day=5
    )
    assert free["pace"] is None and paced["pace"] is not None
    assert paced["seconds"] > 5 * free["seconds"]
    # the requests fit what the pace lets through in that time, and not by much less: it binds
    pace = energy.Pace(**paced["pace"])
    assert paced["requests"] <= pace.requests_by(paced["seconds"]) + 1
    assert paced["requests"] >= 0.9 * pace.requests_by(paced["seconds"])
    # the charge: the requests' and the ACKs' chunks', from the same currents
    assert paced["energy_mah"] > 0 and free["energy_mah"] > 0
    # no datasheet currents: no charge, no pace
    bare = air.estimate(89000, sf=10, max_payload=66, duty=None, allowance_mah_day=5)
    assert bare["energy_mah"] is None and bare["pace"] is None


def test_an_offer_carries_the_pace_of_its_job(conn, tmp_path):
    data = bytes(range(200))
    plain = _queue(conn, tmp_path, NODES[0], data)
    paced = queue_update(conn, tmp_path, NODES[1], data, pace=(216, 400))
    offered = air.offers(conn, {NODES[0], NODES[1]}, now=1)
    assert len(offered[NODES[0]][1]) == 21 and offered[NODES[0]][1] == air.offer_payload(
        jobs.get(conn, plain)
    )
    body = offered[NODES[1]][1]
    assert len(body) == 25 and body[:21] == offered[NODES[0]][1][:21]
    assert (int.from_bytes(body[21:23], "big"), int.from_bytes(body[23:25], "big")) == (216, 400)
    assert jobs.get(conn, paced).air_gap_s == 216


def test_only_firmware_that_reads_a_pace_is_given_one():
    from edge.fuota import updates

    assert [updates.paces(v) for v in ("0.3.0", air.PACED_OFFER_FROM, "1.0.0", None, "junk")] == [
        False,
        True,
        True,
        False,
        False,
    ]
    est = updates.air_estimate("heltec_v3", 89000, 0, 300, energy_mah_day=10)
    assert est is not None and est["pace"] == {"gap_s": 1011, "burst": 28}
    assert est["battery_percent"] == pytest.approx(100 * est["energy_mah"] / 2600, abs=0.01)
    said = updates.estimate_text(est)
    assert f"about {est['energy_mah']:.1f} mAh of the node's battery" in said
    assert "at most 28 requests at once, then one every 17 min" in said
    assert updates.air_estimate("heltec_v3", 89000, 0, 300)["pace"] is None
    with pytest.raises(UpdateRefused, match="energy_mah_day"):
        updates.air_estimate("heltec_v3", 89000, 0, 300, energy_mah_day=0.01)
