"""`fieldpost gpio`: look at the Pi's status GPIO map and check the wiring."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from edge.errors import FieldpostError
from edge.gpio.indicators import Indicators, NullIndicators, open_indicators
from edge.gpio.pinmap import DEFAULT_GPIO_MAP, LED_NAMES, load_pin_map

_map_option = click.option(
    "--map",
    "map_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=str(DEFAULT_GPIO_MAP),
    show_default=True,
    help="GPIO map (JSON, hardware/schema/pi-gpio.schema.json).",
)


@click.group("gpio")
def gpio_group():
    """Status LEDs, buzzer and button on the Pi's GPIO."""


@gpio_group.command("show")
@_map_option
@click.option("--json", "as_json", is_flag=True, help="Print the map as JSON.")
def show_command(map_path, as_json):
    """Print the GPIO map: which BCM pin does what, and the blink codes."""
    try:
        pin_map = load_pin_map(map_path)
    except FieldpostError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        codes = ("link_down", "cloud_unreachable", "alarm", "alarm_buzzer")
        out = {
            "leds": {name: pin_map.leds[name].pin for name in LED_NAMES},
            "buzzer": pin_map.buzzer.pin,
            "button": {"pin": pin_map.button.pin, "long_press_s": pin_map.button.long_press_s},
            "codes": {
                c: {
                    "on_s": getattr(pin_map, c).on_s,
                    "off_s": getattr(pin_map, c).off_s,
                    "led": getattr(pin_map, c).led,
                }
                for c in codes
            },
        }
        click.echo(json.dumps(out, indent=2))
        return
    for name in LED_NAMES:
        click.echo(f"led {name:8} GPIO{pin_map.leds[name].pin}")
    click.echo(f"buzzer       GPIO{pin_map.buzzer.pin}")
    click.echo(f"button       GPIO{pin_map.button.pin} (long press {pin_map.button.long_press_s:g} s)")
    for code in ("link_down", "cloud_unreachable", "alarm", "alarm_buzzer"):
        c = getattr(pin_map, code)
        click.echo(f"code {code:18} {c.on_s:g} s on / {c.off_s:g} s off" + (f" on {c.led}" if c.led else ""))


@gpio_group.command("test")
@_map_option
@click.option("--step", default=0.5, show_default=True, type=float, help="Seconds each output stays on.")
@click.pass_context
def test_command(ctx, map_path, step):
    """Wiring check: light each LED in turn, then sound the buzzer briefly.

    Needs a Pi (gpiozero's pin factory); anywhere else it says so and exits non-zero.
    """
    pin_factory = ctx.obj.get("pin_factory") if isinstance(ctx.obj, dict) else None
    try:
        pin_map = load_pin_map(map_path)
    except FieldpostError as exc:
        raise click.ClickException(str(exc)) from None
    indicators = open_indicators(pin_map, pin_factory=pin_factory)
    if isinstance(indicators, NullIndicators):
        raise click.ClickException("no GPIO on this machine (gpiozero found no pin factory)")
    assert isinstance(indicators, Indicators)
    try:
        for name in LED_NAMES:
            click.echo(f"led {name} (GPIO{pin_map.leds[name].pin}) on")
            indicators.leds[name].on()
            time.sleep(step)
            indicators.leds[name].off()
        click.echo(f"buzzer (GPIO{pin_map.buzzer.pin}) on")
        indicators.buzzer.on()
        time.sleep(step)
        indicators.buzzer.off()
    finally:
        indicators.close()
