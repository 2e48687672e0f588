"""Status LEDs, buzzer and button on the Pi, through gpiozero with the pin factory passed in.

``open_indicators`` is the entry point for the daemon: on a Pi it returns live
Indicators; anywhere else (a laptop, CI, a container) no pin factory loads, so it
logs that once and returns NullIndicators, which accept the same calls and do
nothing. The daemon calls ``show(status)`` whenever link, cloud or alarm state
changes (or periodically); only outputs whose pattern changed are touched, because
re-calling gpiozero's ``blink`` restarts its timing.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any

from gpiozero import LED, Button, Buzzer
from gpiozero.exc import GPIOZeroError

from edge.gpio.patterns import OFF, Pattern, Plan, Silencer, Status, plan
from edge.gpio.pinmap import LED_NAMES, PinMap, load_pin_map

log = logging.getLogger("fieldpost.gpio")

Callback = Callable[[], None]


def detect_pin_factory() -> Any | None:
    """gpiozero's default pin factory, or None when this machine has no usable GPIO."""
    from gpiozero import Device

    with warnings.catch_warnings():
        # gpiozero warns once per factory it falls back from; the single log line says it all.
        warnings.simplefilter("ignore")
        try:
            return Device._default_pin_factory()
        except (GPIOZeroError, ImportError, OSError, RuntimeError):
            return None


class Indicators:
    def __init__(
        self,
        pin_map: PinMap,
        pin_factory: Any,
        *,
        on_silence: Callback | None = None,
        on_force_sync: Callback | None = None,
    ):
        self.pin_map = pin_map
        self._on_silence = on_silence
        self._on_force_sync = on_force_sync
        self._lock = threading.RLock()
        self._silencer = Silencer()
        self._status = Status(link_up=False)
        self._shown: dict[str, Pattern] = {}
        self._held = False  # the current press already fired as a long press
        self._devices: list[Any] = []
        try:
            self.leds = {
                name: self._track(
                    LED(spec.pin, active_high=spec.active_high, initial_value=False, pin_factory=pin_factory)
                )
                for name, spec in pin_map.leds.items()
            }
            self.buzzer = self._track(
                Buzzer(pin_map.buzzer.pin, active_high=pin_map.buzzer.active_high, pin_factory=pin_factory)
            )
            spec = pin_map.button
            self.button = self._track(
                Button(
                    spec.pin,
                    pull_up=spec.pull_up,
                    bounce_time=spec.bounce_s,
                    hold_time=spec.long_press_s,
                    pin_factory=pin_factory,
                )
            )
        except BaseException:
            self.close()
            raise
        self.button.when_held = self._button_held
        self.button.when_released = self._button_released

    def _track(self, device: Any) -> Any:
        self._devices.append(device)
        return device

    @property
    def silenced(self) -> frozenset[int]:
        return self._silencer.silenced

    def show(self, status: Status) -> Plan:
        """Bring every output in line with ``status``; returns the plan applied."""
        with self._lock:
            self._status = status
            return self._refresh()

    def silence(self) -> None:
        """Silence the alarms raised now (what a short press does)."""
        with self._lock:
            self._silencer.silence(self._status.raised_alarms)
            self._refresh()
        log.info("gpio button=short action=silence alarms=%s", sorted(self._status.raised_alarms))
        self._call(self._on_silence, "silence")

    def force_sync(self) -> None:
        log.info("gpio button=long action=force_sync")
        self._call(self._on_force_sync, "force_sync")

    def close(self) -> None:
        for device in reversed(self._devices):
            device.close()
        self._devices.clear()

    def _refresh(self) -> Plan:
        silenced = self._silencer.prune(self._status.raised_alarms)
        wanted = plan(self._status, self.pin_map, silenced)
        for name in LED_NAMES:
            self._set(name, self.leds[name], wanted.leds[name])
        self._set("buzzer", self.buzzer, wanted.buzzer)
        return wanted

    def _set(self, name: str, device: Any, pattern: Pattern) -> None:
        if self._shown.get(name) == pattern:
            return
        if pattern.kind == "blink":
            if isinstance(device, Buzzer):
                device.beep(on_time=pattern.on_s, off_time=pattern.off_s, background=True)
            else:
                device.blink(on_time=pattern.on_s, off_time=pattern.off_s, background=True)
        elif pattern == OFF:
            device.off()
        else:
            device.on()
        self._shown[name] = pattern

    # gpiozero calls these from its own threads.
    def _button_held(self) -> None:
        self._held = True
        self.force_sync()

    def _button_released(self) -> None:
        if self._held:
            self._held = False  # the long press already acted when the hold time passed
            return
        self.silence()

    @staticmethod
    def _call(callback: Callback | None, what: str) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:  # a failing callback must not kill gpiozero's event thread
            log.exception("gpio callback=%s failed", what)


class NullIndicators:
    """Stands in for Indicators where there is no GPIO: same calls, no effect."""

    pin_map = None
    silenced: frozenset[int] = frozenset()

    def show(self, status: Status) -> None:
        return None

    def silence(self) -> None:
        return None

    def force_sync(self) -> None:
        return None

    def close(self) -> None:
        return None


def open_indicators(
    pin_map: PinMap | None = None,
    *,
    pin_factory: Any | None = None,
    detect: Callable[[], Any | None] = detect_pin_factory,
    on_silence: Callback | None = None,
    on_force_sync: Callback | None = None,
) -> Indicators | NullIndicators:
    """Live indicators on a Pi; NullIndicators (after one log line) anywhere else."""
    pin_map = load_pin_map() if pin_map is None else pin_map
    factory = pin_factory if pin_factory is not None else detect()
    if factory is None:
        log.warning("gpio unavailable=no_pin_factory indicators=off")
        return NullIndicators()
    try:
        return Indicators(pin_map, factory, on_silence=on_silence, on_force_sync=on_force_sync)
    except GPIOZeroError as exc:
        log.warning("gpio unavailable=%s indicators=off detail=%r", type(exc).__name__, str(exc))
        return NullIndicators()
