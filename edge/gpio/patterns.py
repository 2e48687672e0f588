"""What each indicator should show, as pure logic: status in, output patterns out.

No gpiozero here; edge/gpio/indicators.py turns a Plan into pin activity.

Codes (timings come from hardware/pi/gpio.json):
- power: steady on while the daemon runs;
- link: steady when every serial link is up, ``link_down`` blink otherwise;
- cloud: steady when the sink is reachable, ``cloud_unreachable`` blink when not, off with no sink;
- alarm: ``alarm`` blink while an alarm nobody silenced is raised, steady while alarms stay open
  after silencing/acknowledgement, off with none;
- buzzer: ``alarm_buzzer`` beep while an unsilenced alarm is raised.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from edge.gpio.pinmap import BlinkCode, PinMap

CLOUD_OK, CLOUD_DOWN, CLOUD_NONE = "ok", "down", "none"


@dataclass(frozen=True)
class Pattern:
    kind: str  # "off", "on" or "blink"
    on_s: float = 0.0
    off_s: float = 0.0

    @classmethod
    def blinking(cls, code: BlinkCode) -> Pattern:
        return cls("blink", code.on_s, code.off_s)


OFF = Pattern("off")
ON = Pattern("on")


@dataclass(frozen=True)
class Status:
    """What the daemon knows right now."""

    link_up: bool
    cloud: str = CLOUD_NONE  # CLOUD_OK, CLOUD_DOWN or CLOUD_NONE (no sink configured)
    raised_alarms: frozenset[int] = frozenset()  # ids in state 'raised' (not acknowledged)
    open_alarms: int = 0  # raised + acknowledged


@dataclass(frozen=True)
class Plan:
    leds: dict[str, Pattern]
    buzzer: Pattern


def plan(status: Status, pin_map: PinMap, silenced: frozenset[int] = frozenset()) -> Plan:
    leds = {"power": ON, "link": ON, "cloud": OFF, "alarm": OFF}
    if not status.link_up:
        leds[pin_map.link_down.led or "link"] = Pattern.blinking(pin_map.link_down)
    if status.cloud == CLOUD_OK:
        leds["cloud"] = ON
    elif status.cloud == CLOUD_DOWN:
        leds[pin_map.cloud_unreachable.led or "cloud"] = Pattern.blinking(pin_map.cloud_unreachable)
    sounding = bool(status.raised_alarms - silenced)
    if sounding:
        leds[pin_map.alarm.led or "alarm"] = Pattern.blinking(pin_map.alarm)
    elif status.open_alarms or status.raised_alarms:
        leds["alarm"] = ON
    buzzer = Pattern.blinking(pin_map.alarm_buzzer) if sounding else OFF
    return Plan(leds=leds, buzzer=buzzer)


@dataclass
class Silencer:
    """Which raised alarms the operator has silenced with the button.

    Silencing covers the alarms raised at the moment of the press; an alarm raised
    afterwards sounds again. Ids no longer raised are forgotten.
    """

    silenced: frozenset[int] = frozenset()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def silence(self, raised: frozenset[int]) -> None:
        with self._lock:
            self.silenced = self.silenced | raised

    def prune(self, raised: frozenset[int]) -> frozenset[int]:
        with self._lock:
            self.silenced = self.silenced & raised
            return self.silenced
