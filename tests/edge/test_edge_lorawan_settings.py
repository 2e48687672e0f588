"""The [lorawan] section: defaults, values, and errors that name the key."""

import pytest

from edge.config import from_dict
from edge.errors import ConfigError
from edge.lorawan.settings import LoRaWANSettings, parse


def test_defaults_and_values():
    assert parse(None) == LoRaWANSettings()
    got = parse({"net_id": 0x13, "join_eui": "70b3d57ed00000dc", "quarantine_max": 50, "log_per_min": 5})
    assert (got.net_id, got.join_eui, got.quarantine_max, got.log_per_min) == (
        0x13,
        "70b3d57ed00000dc",
        50,
        5.0,
    )


@pytest.mark.parametrize(
    "section, message",
    [
        ({"net_id": 1 << 24}, "lorawan.net_id: 16777216 is outside 0 .. 16777215; fix:"),
        (
            {"join_eui": "70B3D57ED00000DC"},
            "lorawan.join_eui: '70B3D57ED00000DC' must be 16 lower-case hex digits",
        ),
        ({"quarantine_max": "lots"}, "lorawan.quarantine_max: 'lots' is str, expected int"),
        ({"accept_v1": 1}, "lorawan.accept_v1: 1 is int, expected bool"),
        ({"rx2": 1}, "lorawan.rx2: unknown key; did you mean rx2_dr? fix:"),
        ({"rx1_dr_offset": 8}, "lorawan.rx1_dr_offset: 8 is outside 0 .. 7; fix:"),
    ],
)
def test_bad_values_name_the_key(section, message):
    with pytest.raises(ConfigError) as err:
        parse(section)
    assert str(err.value).startswith(message)
    # the whole configuration refuses it the same way (fieldpost config and run)
    with pytest.raises(ConfigError) as err:
        from_dict({"lorawan": section}, env={})
    assert str(err.value).startswith(message)
