"""Pure indicator logic and the GPIO map file."""

from __future__ import annotations

import json

import pytest

from edge.errors import ValidationError
from edge.gpio.patterns import CLOUD_DOWN, CLOUD_NONE, CLOUD_OK, OFF, ON, Pattern, Silencer, Status, plan
from edge.gpio.pinmap import DEFAULT_GPIO_MAP, load_pin_map, pin_map_from_dict


@pytest.fixture(scope="module")
def pin_map():
    return load_pin_map()


def test_all_well(pin_map):
    p = plan(Status(link_up=True, cloud=CLOUD_OK), pin_map)
    assert p.leds == {"power": ON, "link": ON, "cloud": ON, "alarm": OFF}
    assert p.buzzer == OFF


def test_codes_come_from_the_map(pin_map):
    p = plan(Status(link_up=False, cloud=CLOUD_DOWN, raised_alarms=frozenset({1}), open_alarms=1), pin_map)
    assert p.leds["link"] == Pattern("blink", pin_map.link_down.on_s, pin_map.link_down.off_s)
    assert p.leds["cloud"] == Pattern(
        "blink", pin_map.cloud_unreachable.on_s, pin_map.cloud_unreachable.off_s
    )
    assert p.leds["alarm"] == Pattern("blink", pin_map.alarm.on_s, pin_map.alarm.off_s)
    assert p.buzzer == Pattern("blink", pin_map.alarm_buzzer.on_s, pin_map.alarm_buzzer.off_s)
    # the three codes are told apart by eye
    assert len({p.leds["link"], p.leds["cloud"], p.leds["alarm"]}) == 3


def test_no_sink_leaves_cloud_led_off(pin_map):
    assert plan(Status(link_up=True, cloud=CLOUD_NONE), pin_map).leds["cloud"] == OFF


def test_acknowledged_alarm_is_steady_and_silent(pin_map):
    p = plan(Status(link_up=True, raised_alarms=frozenset(), open_alarms=2), pin_map)
    assert p.leds["alarm"] == ON and p.buzzer == OFF


def test_silencer_forgets_cleared_alarms():
    s = Silencer()
    s.silence(frozenset({1, 2}))
    assert s.prune(frozenset({2, 3})) == frozenset({2})


def test_repository_map_has_distinct_pins():
    doc = json.loads(DEFAULT_GPIO_MAP.read_text())
    pins = [v["pin"] for v in doc["leds"].values()] + [doc["buzzer"]["pin"], doc["button"]["pin"]]
    assert len(set(pins)) == len(pins)


def test_map_missing_led_pin_names_the_field():
    doc = json.loads(DEFAULT_GPIO_MAP.read_text())
    del doc["leds"]["cloud"]["pin"]
    with pytest.raises(ValidationError) as err:
        pin_map_from_dict(doc)
    assert err.value.field == "leds.cloud.pin"


def test_map_pin_used_twice_is_rejected():
    doc = json.loads(DEFAULT_GPIO_MAP.read_text())
    doc["buzzer"]["pin"] = doc["leds"]["alarm"]["pin"]
    with pytest.raises(ValidationError) as err:
        pin_map_from_dict(doc)
    assert err.value.field == "buzzer.pin" and "leds.alarm" in err.value.message
