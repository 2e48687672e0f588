# Board profiles (hardware/boards/<name>.json) and the HAL they select.
# A profile is data: pins, radio chip, sensors, battery divider, region. The
# HAL object built from it carries the hardware the roles use, passed in:
#   hal.name, hal.profile, hal.clock, hal.modem (lora AsyncModem interface),
#   hal.uart (or None), hal.read_climate() -> (temp C, rh %) with None for a
#   failed sensor, hal.battery_v() -> volts or None, hal.led(on),
#   hal.outputs (index -> set(value)), hal.wdt (feed()), hal.reset(),
#   hal.heap_free(), hal.close()
import json
import sys


# The unix port: any profile runs as a virtual module there (fp/hal/unix.py),
# its radio emulated as the profile wires it.
VIRTUAL = sys.platform in ("linux", "darwin")


class BoardError(ValueError):
    pass


def find_profile(name, search=None):
    # The profile ships next to the firmware as board.json (bundles) or lives in
    # the checkout's hardware/boards/ (virtual modules run from the repository).
    paths = ["board.json"]
    for p in (search or sys.path):
        if p and p != ".frozen":
            paths.append(p + "/board.json")
            paths.append(p + "/../hardware/boards/" + name + ".json")
    for path in paths:
        try:
            with open(path) as f:
                profile = json.load(f)
        except OSError:
            continue
        except ValueError:
            raise BoardError("board profile %s is not valid JSON" % path)
        if profile.get("name") == name:
            return profile
    if name == "unix":
        return UNIX_DEFAULT
    raise BoardError("board profile %r not found" % name)


# The virtual board's profile when hardware/boards/unix.json is not at hand.
UNIX_DEFAULT = {
    "name": "unix", "mcu": "unix", "arch": None,
    "radio": {"chip": "sx1262", "freq_khz": 868100, "tx_power_dbm": 14,
              "spi": {"id": 1, "sck": 9, "mosi": 10, "miso": 11, "baudrate": 2000000},
              "pins": {"cs": 8, "reset": 12, "busy": 13, "dio1": 14}, "tcxo_mv": 1800, "dio2_rf_sw": True},
    "uart": {"kind": "pty"},
    "sensors": [{"type": "simulated"}],
    "battery": {"kind": "simulated"},
    "led": None,
    "outputs": [{"index": 0, "name": "relay"}, {"index": 1, "name": "valve"}],
    "watchdog": {"kind": "soft"},
    "region": "EU868",
}


def lora_cfg(profile, sf, bw_khz):
    # micropython-lib lora configuration dict for this board at this data rate
    radio = profile.get("radio") or {}
    cfg = {
        "freq_khz": radio.get("freq_khz", 868100),
        "sf": sf,
        "bw": str(bw_khz),
        "coding_rate": 5,
        "preamble_len": 8,
        # explicitly: the SX127x driver only sets RxPayloadCrcOn when asked (its reset value is off),
        # while its time on air (and fp/airtime) count the CRC
        "crc_en": True,
        "output_power": radio.get("tx_power_dbm", 14),
        "syncword": 0x12,  # private network: not heard by LoRaWAN gateways (0x34)
    }
    if radio.get("tx_ant"):
        cfg["tx_ant"] = radio["tx_ant"]  # SX127x: the PA pin the board wires to the antenna
    return cfg


def make(cfg, profile=None, clock=None, machine=None):
    profile = profile or find_profile(cfg["board"])
    mcu = profile.get("mcu")
    if mcu == "unix" or (machine is None and VIRTUAL):
        from fp.hal import unix
        return unix.make(profile, cfg, clock)
    if mcu in ("esp32", "esp32s3", "rp2040"):
        from fp.hal import mcu as mcu_hal
        return mcu_hal.make(profile, cfg, clock, machine)
    raise BoardError("board %r: unknown mcu %r" % (profile.get("name"), mcu))
