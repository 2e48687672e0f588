"""The board HAL for real MCUs, built from each board profile with stand-in hardware
objects (the HAL takes `machine` and the `lora` driver passed in), under micropython."""

from __future__ import annotations

import json

import pytest

from tests.firmware.conftest import REPO, run_mp

pytestmark = pytest.mark.firmware


def test_profiles_drive_the_hal(micropython):
    boards = ["heltec_v2", "heltec_v3", "pico_rfm95w"]
    out = run_mp("check_mcu_hal.py", str(REPO / "hardware" / "boards"), *boards)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    got = {d["board"]: d for d in lines if "board" in d}
    # the sensor driver follows the profile: BME280 / SHT3x on I2C at their address, DS18B20 on its pin
    drivers = [(d["driver"], d["where"]) for d in lines if "driver" in d]
    assert drivers == [("BME280", 0x77), ("DS18B20", 4), ("SHT3x", 0x44), (None, None)]
    profiles = {b: json.loads((REPO / "hardware" / "boards" / f"{b}.json").read_text()) for b in boards}
    for b, d in got.items():
        radio = profiles[b]["radio"]
        # the driver gets exactly the profile's pins and SPI bus
        for role, pin in radio["pins"].items():
            assert d["pins"][role] == pin, (b, role)
        assert d["spi"] == [radio["spi"]["id"], radio["spi"]["baudrate"]]
        # SF12 at DR0 on the profile's frequency, private sync word
        assert d["lora"]["sf"] == 12 and d["lora"]["bw"] == "125" and d["lora"]["freq_khz"] == 868100
        # SHT31 conversion (datasheet formula) and the battery divider
        assert d["sht_cmd"] and d["temp"] == 25.0 and d["rh"] == 50.0
        assert d["battery"] == pytest.approx(1.2 * profiles[b]["battery"]["divider"])
        assert d["output0"] == 1
        # watchdog: the profile's timeout unless config sets one, never above the MCU's maximum
        assert d["wdt_profile_ms"] == min(
            profiles[b]["watchdog"]["timeout_ms"], 8388 if b == "pico_rfm95w" else 10**9
        )
        if b == "pico_rfm95w":  # 20 s asked: the RP2040 takes at most 8388 ms; clamped, with a warning
            assert d["wdt_ms"] == 8388 and "clamped to 8388 ms" in d["wdt_warning"]
        else:
            assert d["wdt_ms"] == 20000 and d["wdt_warning"] is None
        u = profiles[b]["uart"]
        assert d["uart"] == [u["id"], u["tx"], u["rx"]]
    assert got["heltec_v2"]["chip"] == "sx1276" and got["pico_rfm95w"]["chip"] == "sx1276"
    # ESP32 strapping pins (0, 2, 5, 12, 15: boot mode, flash voltage) are never outputs: a relay on
    # GPIO12 pulled high at reset sets the flash to 1.8 V and the board does not boot
    for b in ("heltec_v2", "heltec_v3"):
        assert not set(got[b]["output_pins"]) & {0, 2, 5, 12, 15, 45, 46}, b
    # Heltec V2 (and V3): the battery divider is switched on (low) for the reading and off after it
    assert got["heltec_v2"]["bat_sets"][-2:] == [[21, 0], [21, 1]]
    assert got["heltec_v3"]["bat_sets"][-2:] == [[37, 0], [37, 1]]
    assert got["heltec_v3"]["chip"] == "sx1262"
