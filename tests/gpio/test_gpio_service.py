"""The indicators fed from a real database and the daemon's link state; the `fieldpost gpio` commands."""

from __future__ import annotations

from click.testing import CliRunner
from gpiozero.pins.mock import MockFactory

from edge.gpio.cli import gpio_group
from edge.gpio.indicators import Indicators
from edge.gpio.pinmap import load_pin_map
from edge.gpio.service import IndicatorService
from edge.store import connect, migrate, transaction


def test_service_refresh_reads_alarms_and_links(tmp_path):
    db = tmp_path / "fp.db"
    conn = connect(db)
    migrate(conn)
    factory = MockFactory()
    pin_map = load_pin_map()
    links = {"up": False}
    service = IndicatorService(Indicators(pin_map, factory), db, lambda: links["up"])
    try:
        service.refresh()
        alarm_led, link_led = factory.pin(pin_map.leds["alarm"].pin), factory.pin(pin_map.leds["link"].pin)
        assert alarm_led.state is False and service.indicators._shown["link"].kind == "blink"
        with transaction(conn):
            conn.execute(
                "INSERT INTO alarms (rule, severity, state, message, raised_at) VALUES ('t', 'critical', 'raised', 'm', 1)"
            )
        links["up"] = True
        service.refresh()
        assert service.indicators._shown["alarm"].kind == "blink"
        assert service.indicators._shown["buzzer"].kind == "blink"
        assert link_led.state is True
    finally:
        service.close()
        conn.close()
        factory.reset()


def test_gpio_show_lists_the_map():
    result = CliRunner().invoke(gpio_group, ["show"])
    assert result.exit_code == 0, result.output
    pin_map = load_pin_map()
    assert f"led cloud    GPIO{pin_map.leds['cloud'].pin}" in result.output
    assert f"button       GPIO{pin_map.button.pin}" in result.output


def test_gpio_test_drives_every_output_on_a_mock_pi():
    factory = MockFactory()
    try:
        result = CliRunner().invoke(gpio_group, ["test", "--step", "0"], obj={"pin_factory": factory})
        assert result.exit_code == 0, result.output
        pin_map = load_pin_map()
        for spec in [*pin_map.leds.values(), pin_map.buzzer]:
            states = [s.state for s in factory.pin(spec.pin).states]
            assert True in states and states[-1] is False  # went on, ended off
    finally:
        factory.reset()
