"""The [sources] section, the daemon's attach point, /metrics, and the json codec."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest
from sources_helpers import free_udp_port

from edge import config as config_mod
from edge import registry
from edge.codecs import CodecRunner
from edge.codecs.jsonvalues import JsonPayloadError, decode
from edge.daemon import Daemon
from edge.errors import ConfigError
from edge.radio import AckResult, build_uplink
from edge.sources.config import parse
from edge.store import connect, migrate
from edge.store.decode import decode_payload

DEV = "c0a8000000000001"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"udp": {"port": 70000}}, "sources.udp.port"),
        ({"udp": {"host": "lan"}}, "sources.udp.host"),
        ({"coap": {"max_datagram": 65507}}, "sources.coap.max_datagram"),
        ({"coap": {"rate_per_s": 0}}, "sources.coap.rate_per_s"),
        ({"chirpstack": {"enabled": "yes"}}, "sources.chirpstack.enabled"),
        ({"chirpstack": {"adopt_applications": "farm"}}, "sources.chirpstack.adopt_applications"),
        ({"chirpstack": {"codec": "nope"}}, "sources.chirpstack.codec"),
        ({"chirpstack": {"downlink_port": 0}}, "sources.chirpstack.downlink_port"),
        ({"chirpstack": {"colour": "red"}}, "sources.chirpstack.colour"),
        ({"lorawan": {}}, "sources.lorawan"),
        ({"chirpstack": {"ca_file": "/etc/ca.pem"}}, "sources.chirpstack.tls"),
        ({"chirpstack": {"tls": True, "cert_file": "/etc/c.pem"}}, "sources.chirpstack.key_file"),
    ],
)
def test_a_bad_value_names_its_key(section, key):
    with pytest.raises(ConfigError) as info:
        parse(section)
    assert str(info.value).startswith(f"{key}:"), info.value


def test_defaults_listen_nowhere():
    cfg = parse({})
    assert not (cfg.chirpstack.enabled or cfg.udp.enabled or cfg.coap.enabled)
    assert parse({"chirpstack": {"adopt_applications": ["a", "b"]}}).chirpstack.adopt_applications == (
        "a",
        "b",
    )


def test_the_daemon_attaches_udp_and_coap_and_counts_on_metrics(tmp_path):
    import asyncio

    import aiocoap
    from aiocoap.numbers import ContentFormat

    db = tmp_path / "edge.db"
    conn = connect(db)
    migrate(conn)
    key = registry.add_device(conn, DEV, codec="json", actor="test", now=time.time())
    conn.close()
    udp_port, coap_port = free_udp_port(), free_udp_port()
    cfg = config_mod.from_dict(
        {
            "edge": {"db": str(db), "disk_reserve_mb": 0},
            "link": {"discover": False},
            "http": {"port": 0},
            "sources": {
                "udp": {"enabled": True, "host": "127.0.0.1", "port": udp_port},
                "coap": {"enabled": True, "host": "127.0.0.1", "port": coap_port},
            },
        }
    )
    daemon = Daemon(cfg, attach_points=("edge.sources.service:attach",)).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(
                build_uplink(key, DEV, 1, 1, b'{"temperature": 21.5, "door": "open"}'),
                ("127.0.0.1", udp_port),
            )
            assert sock.recv(100)[0] == AckResult.STORED

        async def post():
            ctx = await aiocoap.Context.create_client_context()
            try:
                msg = aiocoap.Message(
                    code=aiocoap.POST,
                    uri=f"coap://127.0.0.1:{coap_port}/up",
                    payload=build_uplink(key, DEV, 2, 1, b'{"temperature": 21.0}'),
                    content_format=ContentFormat.OCTETSTREAM,
                )
                return await ctx.request(msg).response
            finally:
                await ctx.shutdown()

        assert asyncio.run(post()).payload[0] == AckResult.STORED
        metrics = (
            urllib.request.urlopen(f"http://127.0.0.1:{daemon.http.port}/metrics", timeout=5).read().decode()
        )
        assert 'fieldpost_source_messages_total{result="stored",source="udp"} 1.0' in metrics
        assert 'fieldpost_source_messages_total{result="stored",source="coap"} 1.0' in metrics
        assert daemon.services["edge.sources.service"].alive
    finally:
        daemon.stop()
    conn = connect(db)
    try:
        rows = conn.execute(
            "SELECT fcnt, port, raw FROM reading_list WHERE device_id = ? ORDER BY fcnt", (DEV,)
        ).fetchall()
    finally:
        conn.close()
    assert [r[0] for r in rows] == [1, 2]
    # the device's profile says json: its values are derived when read, like an LPP module's
    runner = CodecRunner()
    values, error = decode_payload(runner, "json", rows[0][1], rows[0][2])
    assert error is None
    assert [(v["name"], v["value"]) for v in values] == [("temperature", 21.5), ("door", "open")]


def test_the_json_codec_flattens_and_names_what_it_cannot_read():
    assert decode(b'{"env": {"t": 1.5, "ok": true}, "tags": [1], "n": null}') == [
        {"channel": 0, "name": "env.t", "value": 1.5, "unit": ""},
        {"channel": 0, "name": "env.ok", "value": 1, "unit": ""},
    ]
    for bad, says in ((b"[1]", "a JSON list"), (b"\xff", "not UTF-8"), (b"{", "not JSON")):
        with pytest.raises(JsonPayloadError, match=says):
            decode(bad)
    values, error = CodecRunner().decode("json", 1, b"[]")
    assert values is None and error.startswith("json: payload is a JSON list")


def test_the_rate_limiter_gives_each_address_its_burst_and_rate():
    from edge.sources.ratelimit import RateLimiter

    now = [100.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0], max_addresses=4)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # another address is not touched by a's flood
    now[0] += 0.5  # one token back for a
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    for i in range(10):  # a sweep of addresses does not grow the table without bound
        limiter.allow(f"x{i}")
    assert len(limiter._buckets) <= 4


def test_a_port_in_use_is_a_config_error_naming_it(store):
    from edge.sources.coap import CoapServer
    from edge.sources.udp import UdpListener

    _path, _conn, ingest = store
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        cfg = parse({"udp": {"host": "127.0.0.1", "port": port}, "coap": {"host": "127.0.0.1", "port": port}})
        with pytest.raises(ConfigError, match=f"sources.udp.port: cannot listen on 127.0.0.1:{port}"):
            UdpListener(cfg.udp, ingest, counters=None)
        with pytest.raises(ConfigError, match=f"sources.coap.port: cannot listen on 127.0.0.1:{port}"):
            CoapServer(cfg.coap, ingest, counters=None).start()
