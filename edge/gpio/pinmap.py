"""The Pi's status GPIO map (hardware/pi/gpio.json) as typed data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ValidationError
from provisioning.schema import HARDWARE_DIR, load_json, validate_document

DEFAULT_GPIO_MAP = HARDWARE_DIR / "pi" / "gpio.json"
LED_NAMES = ("power", "link", "cloud", "alarm")


@dataclass(frozen=True)
class Output:
    pin: int
    active_high: bool = True


@dataclass(frozen=True)
class ButtonSpec:
    pin: int
    long_press_s: float
    pull_up: bool = True
    bounce_s: float | None = None


@dataclass(frozen=True)
class BlinkCode:
    """``led`` blinks ``on_s`` on, ``off_s`` off; ``led`` is None for the buzzer's beep."""

    on_s: float
    off_s: float
    led: str | None = None


@dataclass(frozen=True)
class PinMap:
    leds: dict[str, Output]
    buzzer: Output
    button: ButtonSpec
    link_down: BlinkCode
    cloud_unreachable: BlinkCode
    alarm: BlinkCode
    alarm_buzzer: BlinkCode


def pin_map_from_dict(doc: dict[str, Any], *, source: str = "") -> PinMap:
    validate_document(doc, "pi-gpio", source=source)
    used: dict[int, str] = {}
    outputs = [(f"leds.{name}", doc["leds"][name]) for name in LED_NAMES]
    outputs += [("buzzer", doc["buzzer"]), ("button", doc["button"])]
    for field, spec in outputs:
        if spec["pin"] in used:
            raise ValidationError(f"{field}.pin", f"GPIO{spec['pin']} is already used by {used[spec['pin']]}")
        used[spec["pin"]] = field
    codes = doc["blink_codes"]
    return PinMap(
        leds={name: Output(**doc["leds"][name]) for name in LED_NAMES},
        buzzer=Output(**doc["buzzer"]),
        button=ButtonSpec(**doc["button"]),
        link_down=BlinkCode(**codes["link_down"]),
        cloud_unreachable=BlinkCode(**codes["cloud_unreachable"]),
        alarm=BlinkCode(**codes["alarm"]),
        alarm_buzzer=BlinkCode(**codes["alarm_buzzer"]),
    )


def load_pin_map(path: str | Path = DEFAULT_GPIO_MAP) -> PinMap:
    return pin_map_from_dict(load_json(Path(path), "pi-gpio"), source=str(path))
