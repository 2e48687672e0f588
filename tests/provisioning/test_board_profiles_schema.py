"""The board-profile schema: the repository's profiles pass, broken ones are rejected by field."""

from __future__ import annotations

import copy
import json

import pytest

from edge.errors import ValidationError
from provisioning.boards import BOARDS_DIR, board_names, load_board
from provisioning.schema import validate_document

# A complete ESP32 + SX1276 profile in the schema's shape, used when the repository's own
# profiles do not include an SX127x board to break.
HELTEC_V2_LIKE = {
    "name": "example_sx1276",
    "mcu": "esp32",
    "arch": "xtensawin",
    "radio": {
        "chip": "sx1276",
        "freq_khz": 868100,
        "spi": {"id": 1, "sck": 5, "mosi": 27, "miso": 19},
        "pins": {"cs": 18, "reset": 14, "dio0": 26},
    },
    "uart": {"id": 1, "tx": 17, "rx": 16, "baudrate": 921600},
    "i2c": {"id": 0, "sda": 4, "scl": 15},
    "sensors": [{"type": "sht31", "address": 68}],
    "battery": {"adc_pin": 37, "divider": 3.2},
    "led": {"pin": 25},
    "outputs": [{"index": 0, "name": "relay", "pin": 13}],
    "region": "EU868",
}


def repo_profiles():
    return [json.loads(p.read_text()) for p in sorted(BOARDS_DIR.glob("*.json"))]


def profile_with_pins(required_pin: str) -> dict:
    for profile in repo_profiles():
        if required_pin in profile.get("radio", {}).get("pins", {}):
            return copy.deepcopy(profile)
    return copy.deepcopy(HELTEC_V2_LIKE)


@pytest.mark.parametrize("name", board_names())
def test_repository_profile_validates(name):
    profile = load_board(name)
    assert profile["name"] == name  # the file name is the board name modules announce in HELLO


def test_example_profile_validates():
    validate_document(HELTEC_V2_LIKE, "board")


@pytest.mark.parametrize("pin", ["cs", "reset", "dio0"])
def test_missing_radio_pin_is_named(pin):
    profile = profile_with_pins(pin)
    del profile["radio"]["pins"][pin]
    with pytest.raises(ValidationError) as err:
        validate_document(profile, "board")
    assert err.value.field == f"radio.pins.{pin}"


def test_sx126x_needs_busy():
    profile = copy.deepcopy(HELTEC_V2_LIKE)
    profile["radio"] = {
        "chip": "sx1262",
        "spi": {"id": 1, "sck": 9, "mosi": 10, "miso": 11},
        "pins": {"cs": 8, "reset": 12, "dio1": 14},
    }
    with pytest.raises(ValidationError) as err:
        validate_document(profile, "board")
    assert err.value.field == "radio.pins.busy"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("uart", "tx"), "uart.tx"),
        (("spi", "miso"), "radio.spi.miso"),
        (("battery", "divider"), "battery.divider"),
    ],
)
def test_other_missing_fields_are_named(path, field):
    profile = copy.deepcopy(HELTEC_V2_LIKE)
    parent = profile["radio"] if path[0] == "spi" else profile
    del parent[path[0]][path[1]]
    with pytest.raises(ValidationError) as err:
        validate_document(profile, "board")
    assert err.value.field == field


def test_output_pin_needed_on_a_real_mcu():
    profile = copy.deepcopy(HELTEC_V2_LIKE)
    del profile["outputs"][0]["pin"]
    with pytest.raises(ValidationError) as err:
        validate_document(profile, "board")
    assert err.value.field == "outputs.0.pin"


def test_wrong_type_is_named():
    profile = copy.deepcopy(HELTEC_V2_LIKE)
    profile["sensors"][0]["address"] = 300
    with pytest.raises(ValidationError) as err:
        validate_document(profile, "board")
    assert err.value.field == "sensors.0.address"


def test_unknown_board_lists_known_ones(tmp_path):
    (tmp_path / "alpha.json").write_text(json.dumps(dict(HELTEC_V2_LIKE, name="alpha")))
    with pytest.raises(ValidationError) as err:
        load_board("nope", tmp_path)
    assert err.value.field == "board" and "alpha" in err.value.message
    assert load_board("alpha", tmp_path)["name"] == "alpha"
