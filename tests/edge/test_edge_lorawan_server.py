"""The edge as LoRaWAN network and join server: joins, uplinks, counters, rejoin, old frames."""

from __future__ import annotations

import pytest
from edge_helpers import add, stored, uplink, v1_network
from lorawan_node import EndDevice, lpp_reading

from edge import alarms, registry
from edge.ingest import handle_uplink
from edge.lorawan.network import COUNTER_RESET_RULE, Network
from edge.radio import AckResult
from edge.store import transaction
from edge.store.numbers import Numbers

DEV = "00000000000000c1"


@pytest.fixture
def net():
    return Network()


def send(db, net, payload, now=1_700_000_100.0):
    with transaction(db):
        return handle_uplink(
            db, payload, bridge_id="bridge0000000001", numbers=Numbers(), now=now, network=net
        )


def joined(db, net, dev=DEV) -> EndDevice:
    key = registry.get_device(db, dev)["key"] if _registered(db, dev) else add(db, dev)
    node = EndDevice(dev, bytes(key))
    out = send(db, net, node.join_request())
    assert out.result == AckResult.JOINED, out.detail
    node.accept(out.ack[1:])
    return node


def _registered(db, dev):
    return db.execute("SELECT 1 FROM devices WHERE id = ?", (dev,)).fetchone() is not None


def test_otaa_join_then_confirmed_uplinks_are_stored_acked_and_decrypted(db, net):
    node = joined(db, net)
    for i in range(3):
        out = send(db, net, node.uplink(lpp_reading(20 + i)))
        assert out.result == AckResult.STORED, out.detail
        ack, port, _ = node.downlink(out.ack[1:])
        assert ack and port is None  # an ACK without a command carries no FPort
    readings = stored(db, DEV)
    assert [r.msg_id for r in readings] == [f"{DEV}:0", f"{DEV}:1", f"{DEV}:2"]
    assert readings[1].raw == lpp_reading(21)  # kept as plaintext at rest, decoded when read
    # on the air the payload was encrypted: the plaintext bytes are nowhere in the frame
    assert all(lpp_reading(20 + i) not in node.sent[i] for i in range(3))


def test_dev_nonce_is_never_reused(db, net):
    node = joined(db, net)
    node.dev_nonce -= 1  # the same DevNonce again (a replayed join request)
    out = send(db, net, node.join_request())
    assert out.result == AckResult.REPLAYED and "DevNonce 1 used before" in out.detail
    node.dev_nonce = 0  # lower still
    assert send(db, net, node.join_request()).result == AckResult.REPLAYED


def test_join_with_the_wrong_app_key_or_unknown_dev_eui(db, net):
    add(db, DEV)
    out = send(db, net, EndDevice(DEV, bytes(16)).join_request())
    assert out.result == AckResult.BAD_MIC
    out = send(db, net, EndDevice("00000000000000ff", bytes(16)).join_request())
    assert out.result == AckResult.UNKNOWN_DEVICE
    assert [r["device_id"] for r in registry.list_quarantine(db)] == ["00000000000000ff"]


def test_a_true_retransmission_is_a_duplicate_with_a_fresh_ack(db, net):
    node = joined(db, net)
    frame = node.uplink(lpp_reading(20))
    assert send(db, net, frame).result == AckResult.STORED
    again = send(db, net, frame)
    assert again.result == AckResult.DUPLICATE
    node.fcnt_down = -1
    ack, _, _ = node.downlink(again.ack[1:])
    assert ack
    assert len(stored(db, DEV)) == 1


def test_counter_reset_is_refused_with_rejoin_and_an_alarm_then_nothing_is_lost(db, net):
    node = joined(db, net)
    for i in range(5):
        assert send(db, net, node.uplink(lpp_reading(20 + i))).result == AckResult.STORED
    # The node loses its counter under the same session: five new readings at fcnt 0..4.
    node.fcnt = 0
    acked_as_duplicate = 0
    for i in range(5):
        out = send(db, net, node.uplink(lpp_reading(30 + i)))
        assert out.result == AckResult.REJOIN, out.result
        acked_as_duplicate += out.result == AckResult.DUPLICATE
        ack, port, body = node.downlink(out.ack[1:])
        assert (ack, port, body) == (False, 4, b"\x01")  # not an ACK: "join again"
    assert acked_as_duplicate == 0
    assert [r.raw for r in stored(db, DEV)] == [lpp_reading(20 + i) for i in range(5)]
    raised = [a for a in alarms.open_alarms(db) if a.rule == COUNTER_RESET_RULE]
    assert len(raised) == 1 and raised[0].device_id == DEV  # once, not once per frame
    # The node rejoins: new keys, counters from 0, ids continue above everything stored.
    out = send(db, net, node.join_request())
    assert out.result == AckResult.JOINED
    node.accept(out.ack[1:])
    for i in range(5):
        assert send(db, net, node.uplink(lpp_reading(30 + i))).result == AckResult.STORED
    readings = stored(db, DEV)
    assert [r.msg_id.split(":")[1] for r in readings] == [str(n) for n in range(10)]
    assert [r.raw for r in readings[5:]] == [lpp_reading(30 + i) for i in range(5)]


def test_counter_past_a_16_bit_wrap_keeps_32_bits(db, net):
    node = joined(db, net)
    assert send(db, net, node.uplink(lpp_reading(1), fcnt=0xFFFF)).result == AckResult.STORED
    out = send(db, net, node.uplink(lpp_reading(2), fcnt=0x10002))
    assert out.result == AckResult.STORED
    assert [r.msg_id for r in stored(db, DEV)] == [f"{DEV}:{0xFFFF}", f"{DEV}:{0x10002}"]


def test_forged_mic_and_unknown_devaddr(db, net):
    node = joined(db, net)
    good_nwk = node.nwk
    node.nwk = bytes(16)
    assert send(db, net, node.uplink(b"x")).result == AckResult.BAD_MIC
    node.nwk, node.devaddr = good_nwk, node.devaddr ^ 1
    out = send(db, net, node.uplink(b"x"))
    assert out.result == AckResult.UNKNOWN_DEVICE and "join first" in out.detail


def test_old_format_frames_from_nodes_are_refused_by_default_and_from_joined_devices_always(db, net):
    # the shipped default (accept_v1 = false): a node that never joined is refused, saying why
    key = add(db, DEV)
    out = send(db, net, uplink(key, DEV, 1))
    assert out.result == AckResult.MALFORMED and "LoRaWAN frames only" in out.detail
    assert "accept_v1" in out.detail and not stored(db, DEV)
    assert net.stats["v1_refused"] == 1
    # a site that still has v1 nodes opts in: their frames are taken until the node joins
    v1 = v1_network()
    assert send(db, v1, uplink(key, DEV, 1)).result == AckResult.STORED
    joined(db, v1)
    out = send(db, v1, uplink(key, DEV, 2))
    assert out.result == AckResult.MALFORMED and "this device speaks LoRaWAN now" in out.detail
    # a bridge's own readings never go on the air: they stay v1 on its serial link
    bridge = "00000000000000b0"
    bkey = registry.add_device(db, bridge, role="bridge", actor="test", now=1.0)
    assert send(db, net, uplink(bkey, bridge, 1, rssi=0, snr=0)).result == AckResult.STORED
    # nor do a UDP or CoAP device's frames (no bridge; docs/sources.md)
    ip_dev = "00000000000000c2"
    ip_key = add(db, ip_dev)
    with transaction(db):
        out = handle_uplink(
            db, uplink(ip_key, ip_dev, 1), bridge_id=None, numbers=Numbers(), now=1.0, network=net
        )
    assert out.result == AckResult.STORED, out.detail


def test_a_migrated_v1_device_joins_with_its_old_key_and_its_ids_continue(db):
    # A device of the v1 protocol with readings up to fcnt 41 (taken by a site with accept_v1):
    # the migration kept its row.
    net = v1_network()
    key = add(db, DEV)
    for fcnt in (40, 41):
        assert send(db, net, uplink(key, DEV, fcnt)).result == AckResult.STORED
    node = EndDevice(DEV, key)  # its v1 key is its AppKey
    out = send(db, net, node.join_request())
    assert out.result == AckResult.JOINED
    node.accept(out.ack[1:])
    assert send(db, net, node.uplink(lpp_reading(5))).result == AckResult.STORED
    assert [r.msg_id for r in stored(db, DEV)] == [f"{DEV}:40", f"{DEV}:41", f"{DEV}:42"]


def test_rotating_the_app_key_voids_the_session_and_the_counter_may_start_over(db, net):
    node = joined(db, net)
    for i in range(3):
        assert send(db, net, node.uplink(lpp_reading(i))).result == AckResult.STORED
    new_key = registry.rotate_key(db, DEV, actor="test", now=1_700_000_200.0)
    assert send(db, net, node.uplink(lpp_reading(9))).result == AckResult.UNKNOWN_DEVICE  # old session gone
    node = EndDevice(DEV, new_key)  # DevNonce from 1 again, allowed under the new key
    out = send(db, net, node.join_request())
    assert out.result == AckResult.JOINED
    node.accept(out.ack[1:])
    assert send(db, net, node.uplink(lpp_reading(7))).result == AckResult.STORED
    assert [r.msg_id.split(":")[1] for r in stored(db, DEV)] == ["0", "1", "2", "3"]


def test_abp_session_set_by_hand_takes_uplinks(db, net):
    abp = registry.AbpSession(0x260B0001, bytes(range(16)), bytes(range(16, 32)))
    key = registry.add_device(db, DEV, abp=abp, actor="test", now=1.0)  # as `devices add --activation abp`
    node = EndDevice(DEV, key)
    node.devaddr, node.nwk, node.app = abp.devaddr, abp.nwk_skey, abp.app_skey
    for i in range(3):
        assert send(db, net, node.uplink(lpp_reading(i))).result == AckResult.STORED
    assert [r.msg_id for r in stored(db, DEV)] == [f"{DEV}:0", f"{DEV}:1", f"{DEV}:2"]


def test_the_join_accept_announces_the_configured_receive_windows(db):
    """RxDelay and DLSettings (RX1DROffset, RX2DataRate) come from [lorawan]; a bridge learns the
    same three from the daemon's HELLO_ACK ("rx") to time the downlinks into RX1 or RX2."""
    from edge.lorawan import frames as F
    from edge.lorawan import server
    from edge.lorawan.settings import parse

    settings = parse({"rx1_delay_s": 3, "rx1_dr_offset": 2, "rx2_dr": 8})
    net = Network(settings)
    key = add(db, DEV)
    node = EndDevice(DEV, bytes(key))
    out = send(db, net, node.join_request())
    assert out.result == AckResult.JOINED, out.detail
    _, _, _, dl_settings, rx_delay, _ = F.open_join_accept(bytes(key), out.ack[1:])
    assert (rx_delay, dl_settings >> 4 & 7, dl_settings & 0x0F) == (3, 2, 8)
    assert server.windows(settings) == [3, 2, 8]
    # the defaults: RECEIVE_DELAY1 1 s, offset 0, RX2 DR0 (EU868's)
    assert server.windows(parse(None)) == [1, 0, 0] and server.dl_settings(parse(None)) == 0
