"""Sensor drivers (firmware/fp/sensors/) on simulated buses that replay datasheet example frames,
under `micropython`: SHT3x with its CRC-8 checked, BME280 with Bosch's integer compensation,
DS18B20 through the 1-Wire API with its Dallas CRC-8 and the power-on value refused."""

from __future__ import annotations

import json
import struct

import pytest

from tests.firmware.conftest import run_mp

pytestmark = pytest.mark.firmware


def run(*cases: dict) -> list[dict]:
    out = run_mp("check_sensors.py", json.dumps(list(cases)))
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def crc_sensirion(data: bytes) -> int:
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc_dallas(data: bytes) -> int:
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def test_crc_check_values_from_the_datasheets(micropython):
    # SHT3x datasheet 4.12: CRC(0xBEEF) = 0x92; Maxim app note 27: the ROM 02 1C B8 01 00 00 00 -> A2
    (got,) = run({"kind": "crc", "sht3x": "beef", "ds18b20": "021cb801000000"})
    assert got == {"sht3x": 0x92, "ds18b20": 0xA2}


def sht_frame(t_raw: int, h_raw: int) -> bytes:
    t, h = struct.pack(">H", t_raw), struct.pack(">H", h_raw)
    return t + bytes([crc_sensirion(t)]) + h + bytes([crc_sensirion(h)])


def test_sht3x_converts_and_refuses_a_word_that_fails_its_crc(micropython):
    good = sht_frame(0x6666, 0x8000)  # 25.0 degC, 50 %RH by the datasheet's conversion (4.13)
    bad_t = bytearray(good)
    bad_t[1] ^= 0x01  # one bit of the temperature word
    bad_h = bytearray(good)
    bad_h[5] ^= 0x80  # the humidity word's CRC byte
    ok, t_err, h_err = run(
        {"kind": "sht3x", "reply": good.hex()},
        {"kind": "sht3x", "reply": bad_t.hex()},
        {"kind": "sht3x", "reply": bad_h.hex()},
    )
    assert ok["writes"] == ["2400"]  # single shot, high repeatability, no clock stretching
    assert ok["value"] == pytest.approx([25.0, 50.0], abs=0.01)
    assert "CRC" in t_err["error"] and "CRC" in h_err["error"]


# Bosch's compensation example (BMP280 datasheet BST-BMP280-DS001, 3.12; the BME280 shares
# its temperature and pressure formulas): these trimming values and raw readings give
# 25.08 degC and 100653.27 Pa.
T_P_TRIM = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
ADC_T, ADC_P = 519888, 415148
# humidity trimming as a BME280 carries it (H1 at 0xA1, H2..H6 packed in 0xE1..0xE7)
H1, H2, H3, H4, H5, H6 = 75, 362, 0, 313, 50, 30
ADC_H = 30000


def bme_regs() -> dict[str, str]:
    e = struct.pack("<hB", H2, H3) + bytes([H4 >> 4, (H4 & 0x0F) | ((H5 & 0x0F) << 4), H5 >> 4, H6 & 0xFF])
    data = bytes(
        [
            ADC_P >> 12,
            (ADC_P >> 4) & 0xFF,
            (ADC_P & 0x0F) << 4,
            ADC_T >> 12,
            (ADC_T >> 4) & 0xFF,
            (ADC_T & 0x0F) << 4,
        ]
    ) + struct.pack(">H", ADC_H)
    return {
        str(0xD0): "60",
        str(0x88): struct.pack("<HhhHhhhhhhhh", *T_P_TRIM).hex(),
        str(0xA1): bytes([H1]).hex(),
        str(0xE1): e.hex(),
        str(0xF7): data.hex(),
    }


def humidity_double(t_fine: float) -> float:
    """The datasheet's double-precision humidity formula (BME280 DS002, 8.1): a second way."""
    var_h = t_fine - 76800.0
    var_h = (ADC_H - (H4 * 64.0 + H5 / 16384.0 * var_h)) * (
        H2 / 65536.0 * (1.0 + H6 / 67108864.0 * var_h * (1.0 + H3 / 67108864.0 * var_h))
    )
    var_h = var_h * (1.0 - H1 * var_h / 524288.0)
    return min(100.0, max(0.0, var_h))


def test_bme280_compensates_as_the_datasheet_example(micropython):
    (got,) = run({"kind": "bme280", "regs": bme_regs()})
    temp, rh = got["value"]
    assert temp == pytest.approx(25.08, abs=0.005)
    assert got["pressure_pa"] == pytest.approx(100653.27, abs=0.5)
    t_fine = 128422  # the example's t_fine
    assert rh == pytest.approx(humidity_double(t_fine), abs=0.05)
    # humidity oversampling is written before ctrl_meas (it only applies at the next ctrl_meas)
    assert got["writes"] == ["f2:01", "f4:25"]


def test_bme280_refuses_another_chip(micropython):
    regs = bme_regs()
    regs[str(0xD0)] = "58"  # a BMP280 (no humidity) answering at the address
    (got,) = run({"kind": "bme280", "regs": regs})
    assert "chip id 0x58" in got["error"]


def scratchpad(raw: int) -> bytes:
    # DS18B20 scratchpad: temperature LSB/MSB, TH, TL, config (12 bit), reserved, CRC
    body = struct.pack("<h", raw) + bytes([0x4B, 0x46, 0x7F, 0xFF, 0x0C, 0x10])
    return body + bytes([crc_dallas(body)])


@pytest.mark.parametrize(
    "raw, celsius",
    [
        (0x07D0, 125.0),
        (0x0191, 25.0625),
        (0x0008, 0.5),
        (0xFF5E - 0x10000, -10.125),
        (0xFC90 - 0x10000, -55.0),
    ],
)
def test_ds18b20_temperatures_from_the_datasheet_table(micropython, raw, celsius):
    # DS18B20 datasheet table 1 (temperature/data relationship)
    (got,) = run({"kind": "ds18b20", "scratch": scratchpad(raw).hex()})
    assert got["value"] == [celsius, None]
    assert got["writes"] == [0xCC, 0x44, 0xCC, 0xBE]  # skip ROM, convert T; skip ROM, read scratchpad


def test_ds18b20_refuses_bad_crc_power_on_value_and_absence(micropython):
    bad = bytearray(scratchpad(0x0191))
    bad[0] ^= 0x04
    power_on = scratchpad(0x0550)
    assert power_on.hex().endswith("1c")  # the datasheet's power-up scratchpad, CRC 0x1C
    crc, por, absent = run(
        {"kind": "ds18b20", "scratch": bad.hex()},
        {"kind": "ds18b20", "scratch": power_on.hex()},
        {"kind": "ds18b20", "scratch": power_on.hex(), "present": False},
    )
    assert "CRC" in crc["error"]
    assert "power-on" in por["error"]
    assert "no presence" in absent["error"]
