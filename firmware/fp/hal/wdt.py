# The watchdog timeout a board gets: config, else its profile, clamped to the MCU.
# Largest hardware watchdog timeout per MCU (ms). RP2040: a 24-bit counter of 1 us
# ticks that counts down by 2 (erratum RP2040-E1), so 0xFFFFFF / 2 / 1000 = 8388 ms;
# MicroPython's rp2 machine.WDT refuses more, which made the Pico fail at boot.
# ESP32/ESP32-S3: the task watchdog takes any practical value.
WDT_MAX_MS = {"rp2040": 8388}
WDT_DEFAULT_MS = 30000


def watchdog_ms(profile, cfg):
    # (timeout ms, warning or None): config watchdog_s if set (> 0), else the
    # profile's watchdog.timeout_ms, else 30 s; clamped to the MCU's maximum.
    want = int(cfg.get("watchdog_s", 0) * 1000)
    if want <= 0:
        want = (profile.get("watchdog") or {}).get("timeout_ms") or WDT_DEFAULT_MS
    top = WDT_MAX_MS.get(profile.get("mcu"))
    if top and want > top:
        return top, "watchdog %d ms above the %s maximum: clamped to %d ms" % (want, profile.get("mcu"), top)
    return want, None
