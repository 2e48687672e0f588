"""GPIO indicators on gpiozero's MockFactory: real gpiozero devices, mock pins."""

from __future__ import annotations

import dataclasses
import itertools
import logging

import pytest
from gpiozero.pins.mock import MockFactory

from edge.gpio import CLOUD_DOWN, CLOUD_OK, Indicators, NullIndicators, Status, load_pin_map, open_indicators
from edge.gpio.pinmap import BlinkCode

FAST = BlinkCode(on_s=0.01, off_s=0.01)


def toggles(pin) -> int:
    return len(pin.states) - 1


@pytest.fixture
def pin_map():
    # The repository's map, with blink codes sped up so a test sees several cycles quickly.
    real = load_pin_map()
    return dataclasses.replace(
        real,
        link_down=dataclasses.replace(FAST, led=real.link_down.led),
        cloud_unreachable=dataclasses.replace(FAST, led=real.cloud_unreachable.led),
        alarm=dataclasses.replace(FAST, led=real.alarm.led),
        alarm_buzzer=FAST,
    )


@pytest.fixture
def factory():
    f = MockFactory()
    try:
        yield f
    finally:
        f.reset()


@pytest.fixture
def calls():
    return {"silence": 0, "sync": 0}


def counting_indicators(pin_map, factory, calls) -> Indicators:
    """Indicators whose button callbacks count into ``calls``."""
    return Indicators(
        pin_map,
        factory,
        on_silence=lambda: calls.__setitem__("silence", calls["silence"] + 1),
        on_force_sync=lambda: calls.__setitem__("sync", calls["sync"] + 1),
    )


@pytest.fixture
def indicators(pin_map, factory, calls):
    ind = counting_indicators(pin_map, factory, calls)
    try:
        yield ind
    finally:
        ind.close()


def pin(factory, pin_map, name):
    spec = pin_map.buzzer if name == "buzzer" else pin_map.button if name == "button" else pin_map.leds[name]
    return factory.pin(spec.pin)


def test_cloud_led_blinks_while_sink_down_and_is_steady_when_back(indicators, factory, pin_map, wait_until):
    cloud = pin(factory, pin_map, "cloud")
    indicators.show(Status(link_up=True, cloud=CLOUD_DOWN))
    cloud.clear_states()
    assert wait_until(lambda: toggles(cloud) >= 4), cloud.states
    states = [s.state for s in cloud.states]
    assert all(a != b for a, b in itertools.pairwise(states))  # on, off, on, off: a blink, not a glitch

    indicators.show(Status(link_up=True, cloud=CLOUD_OK))
    # gpiozero joins the blink thread before on() returns: the LED is now steadily lit.
    assert cloud.state is True and indicators.leds["cloud"].value == 1


def test_link_led_blinks_while_link_down_power_is_steady(indicators, factory, pin_map, wait_until):
    link, power = pin(factory, pin_map, "link"), pin(factory, pin_map, "power")
    indicators.show(Status(link_up=False, cloud=CLOUD_OK))
    link.clear_states()
    assert wait_until(lambda: toggles(link) >= 4)
    assert power.state is True
    indicators.show(Status(link_up=True, cloud=CLOUD_OK))
    assert link.state is True


def test_buzzer_sounds_on_alarm_and_short_press_silences_it(indicators, factory, pin_map, calls, wait_until):
    buzzer, button = pin(factory, pin_map, "buzzer"), pin(factory, pin_map, "button")
    alarm_led = pin(factory, pin_map, "alarm")
    indicators.show(Status(link_up=True, cloud=CLOUD_OK))
    assert buzzer.state is False

    indicators.show(Status(link_up=True, cloud=CLOUD_OK, raised_alarms=frozenset({7}), open_alarms=1))
    buzzer.clear_states()
    alarm_led.clear_states()
    assert wait_until(lambda: toggles(buzzer) >= 4 and toggles(alarm_led) >= 4)

    button.drive_low()  # pressed (pull-up: the button shorts the pin to ground)
    button.drive_high()  # released well before the hold time: a short press
    assert calls == {"silence": 1, "sync": 0}
    assert buzzer.state is False and indicators.buzzer.value == 0
    assert alarm_led.state is True  # still open: steady, no longer blinking
    assert indicators.silenced == frozenset({7})

    # The same alarm on the next refresh stays silent; a new alarm sounds again.
    indicators.show(Status(link_up=True, cloud=CLOUD_OK, raised_alarms=frozenset({7}), open_alarms=1))
    assert buzzer.state is False
    indicators.show(Status(link_up=True, cloud=CLOUD_OK, raised_alarms=frozenset({7, 8}), open_alarms=2))
    buzzer.clear_states()
    assert wait_until(lambda: toggles(buzzer) >= 2)

    # Everything cleared: alarm LED and buzzer off.
    indicators.show(Status(link_up=True, cloud=CLOUD_OK))
    assert buzzer.state is False and alarm_led.state is False


def test_long_press_forces_a_sync_and_does_not_silence(pin_map, factory, calls, wait_until):
    quick_hold = dataclasses.replace(pin_map, button=dataclasses.replace(pin_map.button, long_press_s=0.05))
    ind = counting_indicators(quick_hold, factory, calls)
    try:
        ind.show(Status(link_up=True, cloud=CLOUD_OK, raised_alarms=frozenset({3}), open_alarms=1))
        button = pin(factory, quick_hold, "button")
        button.drive_low()
        assert wait_until(lambda: calls["sync"] == 1)  # fires once the hold time has passed
        button.drive_high()
        assert calls == {"silence": 0, "sync": 1}
        assert ind.silenced == frozenset()
    finally:
        ind.close()


def test_failing_callback_is_logged_not_raised(pin_map, factory, caplog):
    def boom():
        raise RuntimeError("sync queue gone")

    ind = Indicators(pin_map, factory, on_silence=boom)
    try:
        with caplog.at_level(logging.ERROR, logger="fieldpost.gpio"):
            button = pin(factory, pin_map, "button")
            button.drive_low()
            button.drive_high()
        assert any("callback=silence" in r.getMessage() for r in caplog.records)
    finally:
        ind.close()


def test_off_a_pi_logs_once_and_does_nothing(pin_map, caplog):
    with caplog.at_level(logging.INFO, logger="fieldpost.gpio"):
        ind = open_indicators(pin_map, detect=lambda: None)
        for _ in range(5):
            ind.show(Status(link_up=False, cloud=CLOUD_DOWN, raised_alarms=frozenset({1}), open_alarms=1))
        ind.silence()
        ind.force_sync()
        ind.close()
    assert isinstance(ind, NullIndicators)
    lines = [r for r in caplog.records if r.name == "fieldpost.gpio"]
    assert len(lines) == 1 and "unavailable" in lines[0].getMessage()


def test_default_detection_on_this_machine_does_not_raise(pin_map, caplog):
    # CI machines have no GPIO: gpiozero finds no factory and we fall back quietly.
    from edge.gpio import detect_pin_factory

    factory = detect_pin_factory()
    ind = open_indicators(pin_map, detect=lambda: factory)
    try:
        ind.show(Status(link_up=True))
    finally:
        ind.close()
    if factory is None:
        assert isinstance(ind, NullIndicators)


def test_open_indicators_with_a_factory_gives_live_indicators(pin_map, factory):
    ind = open_indicators(pin_map, pin_factory=factory)
    try:
        assert isinstance(ind, Indicators)
        ind.show(Status(link_up=True, cloud=CLOUD_OK))
        assert factory.pin(pin_map.leds["power"].pin).state is True
    finally:
        ind.close()
