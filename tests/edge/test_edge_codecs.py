import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.codecs import CodecError, CodecRunner, available, lpp, normalise


def test_lpp_standard_reading_with_units():
    payload = lpp.encode([(1, "temperature", -3.2), (2, "humidity", 55.5), (3, "voltage", 3.71)])
    assert len(payload) == 11  # the "standard reading" of docs/radio.md
    assert lpp.decode(payload) == [
        {"channel": 1, "name": "temperature", "value": -3.2, "unit": "°C"},
        {"channel": 2, "name": "humidity", "value": 55.5, "unit": "%"},
        {"channel": 3, "name": "voltage", "value": 3.71, "unit": "V"},
    ]


def test_lpp_multi_value_types():
    values = lpp.decode(lpp.encode([(4, "gps", (52.3721, 4.8953, 12.5)), (5, "accelerometer", (0.5, -1, 0))]))
    assert [(v["name"], v["value"], v["unit"]) for v in values] == [
        ("latitude", 52.3721, "°"),
        ("longitude", 4.8953, "°"),
        ("altitude", 12.5, "m"),
        ("accelerometer_x", 0.5, "g"),
        ("accelerometer_y", -1.0, "g"),
        ("accelerometer_z", 0.0, "g"),
    ]


@pytest.mark.parametrize(
    "payload, message",
    [(b"\x01", "truncated"), (b"\x01\x67\x00", "needs 2 bytes"), (b"\x01\xee\x00", "unknown LPP type 238")],
)
def test_lpp_errors_name_the_problem(payload, message):
    with pytest.raises(lpp.LppError, match=message):
        lpp.decode(payload)


def test_decode_failure_returns_error_not_exception(codecs):
    values, error = codecs.decode("lpp", 1, b"\x01\xee\x00")
    assert values is None and "unknown LPP type" in error


def test_normalise_rejects_bad_codec_output():
    assert normalise([{"name": "t", "value": 1}]) == [{"channel": 0, "name": "t", "value": 1, "unit": ""}]
    for bad in (
        {},
        [1],
        [{"value": 1}],
        [{"name": "x", "value": [1]}],
        [{"name": "x", "value": float("nan")}],
    ):
        with pytest.raises(CodecError):
            normalise(bad)


def test_plugins_are_listed(plugin_path):
    assert {"lpp", "raw", "tank_good", "tank_slow"} <= set(available())


def test_plugin_decodes_in_worker(plugin_path):
    runner = CodecRunner(timeout_s=5)
    try:
        assert runner.decode("tank_good", 1, b"\x15") == (
            [{"channel": 1, "name": "level", "value": 42, "unit": "cm"}],
            None,
        )
        values, error = runner.decode("tank_broken", 1, b"\x15")
        assert values is None and "byte 0 out of range" in error
        values, error = runner.decode("tank_wrong", 1, b"\x15")
        assert values is None and "expected a list" in error
        values, error = runner.decode("tank_missing", 1, b"\x15")
        assert values is None and "no codec plug-in named" in error
    finally:
        runner.close()


def test_plugin_time_limit_kills_and_recovers(plugin_path):
    runner = CodecRunner(timeout_s=5)
    try:
        assert runner.decode("tank_good", 1, b"\x01")[1] is None  # worker is up (spawn takes a moment)
        runner.timeout_s = 0.3
        values, error = runner.decode("tank_slow", 1, b"\x01")
        assert values is None and "timed out after 0.3 s" in error
        assert runner.timeouts == 1
        runner.timeout_s = 5
        assert runner.decode("tank_good", 1, b"\x02")[0][0]["value"] == 4  # a fresh worker took over
    finally:
        runner.close()


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.sampled_from(sorted(lpp.TYPES)), st.binary(min_size=9, max_size=9)),
        max_size=6,
    ),
    st.booleans(),
)
def test_lpp_json_text_is_exactly_the_json_of_the_decoded_values(parts, fieldpost_channels):
    # what sync sends (decode_json, built as text) must be what json.dumps of decode() would give
    payload = b"".join(bytes([ch, code]) + data[: lpp.TYPES[code].size] for ch, code, data in parts)
    channels = lpp.FIELDPOST_ANALOG_CHANNELS if fieldpost_channels else None
    expected = json.dumps(
        lpp.decode(payload, analog_channels=channels), separators=(",", ":"), ensure_ascii=False
    )
    assert lpp.decode_json(payload, analog_channels=channels) == expected
    truncated = payload + b"\x01"
    with pytest.raises(lpp.LppError):
        lpp.decode_json(truncated)
