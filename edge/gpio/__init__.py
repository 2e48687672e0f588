"""GPIO status indicators on the Pi: LEDs with blink codes, an alarm buzzer, a button.

The pin map is data (hardware/pi/gpio.json); the pin factory is passed in, so the
tests run on gpiozero's MockFactory and a machine without GPIO gets NullIndicators.
"""

from edge.gpio.indicators import Indicators, NullIndicators, detect_pin_factory, open_indicators
from edge.gpio.patterns import CLOUD_DOWN, CLOUD_NONE, CLOUD_OK, Status
from edge.gpio.pinmap import PinMap, load_pin_map

__all__ = [
    "CLOUD_DOWN",
    "CLOUD_NONE",
    "CLOUD_OK",
    "Indicators",
    "NullIndicators",
    "PinMap",
    "Status",
    "detect_pin_factory",
    "load_pin_map",
    "open_indicators",
]
