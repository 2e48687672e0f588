# Use of the emulated chips that a real SX1276/SX1262 ignores or rejects, over
# the same machine.Pin/SPI objects a driver gets. Prints one JSON document:
# per case, what the chip logged and how it answered; and what the real
# lora driver makes of a setting the SX1262 rejects.
# usage: micropython radio_misuse.py <port> <boards dir>
import asyncio
import json
import sys
import time

from fp.hal import airwire, board, mcu
from fp.hal.emu import radio

PORT, BOARDS = int(sys.argv[1]), sys.argv[2]


def chip_for(name):
    profile = json.load(open("%s/%s.json" % (BOARDS, name)))
    chip, machine = radio.make_chip(profile, airwire.Air(PORT, ()), 1)
    pins = profile["radio"]["pins"]
    spi = profile["radio"]["spi"]
    bus = machine.SPI(
        spi["id"],
        baudrate=1000000,
        sck=machine.Pin(spi["sck"]),
        mosi=machine.Pin(spi["mosi"]),
        miso=machine.Pin(spi["miso"]),
    )
    cs = machine.Pin(pins["cs"], machine.Pin.OUT, value=1)
    return profile, chip, machine, bus, cs


def xfer(bus, cs, data, n_read=0):
    buf = bytearray(data) + bytearray(n_read)
    cs(0)
    bus.write_readinto(bytes(buf), buf)
    cs(1)
    return bytes(buf)


def case(chip, fn):
    before = chip.invalid
    n = len(chip.log)
    answer = fn()
    return {"invalid": chip.invalid - before, "log": chip.log[n:], "answer": answer}


out = {}

# --- SX1276 -------------------------------------------------------------------------
profile, c, m, bus, cs = chip_for("heltec_v2")
reset = m.Pin(profile["radio"]["pins"]["reset"], m.Pin.OUT, value=1)
reset(0)
reset(1)
out["sx1276_too_soon_after_reset"] = case(c, lambda: xfer(bus, cs, b"\x42", 1).hex())
time.sleep_ms(6)
out["sx1276_version"] = case(c, lambda: xfer(bus, cs, b"\x42", 1).hex())
out["sx1276_write_version"] = case(
    c, lambda: (xfer(bus, cs, b"\xc2\x22"), xfer(bus, cs, b"\x42", 1).hex())[1]
)
out["sx1276_lora_outside_sleep"] = case(
    c, lambda: (xfer(bus, cs, b"\x81\x81"), xfer(bus, cs, b"\x01", 1).hex())[1]
)
xfer(bus, cs, b"\x81\x80")  # Sleep, then LoRa from Sleep: allowed
xfer(bus, cs, b"\x81\x80")
out["sx1276_fifo_in_sleep"] = case(c, lambda: xfer(bus, cs, b"\x80\x55"))
xfer(bus, cs, b"\x81\x81")  # LoRa standby
out["sx1276_reserved_reg"] = case(c, lambda: xfer(bus, cs, b"\xab\x01"))
out["sx1276_sf6_explicit_tx"] = case(
    c, lambda: (xfer(bus, cs, b"\x9e\x64"), xfer(bus, cs, b"\xa2\x01"), xfer(bus, cs, b"\x81\x83"))[0]
)
time.sleep_ms(20)
c.poll()


def nss_high():
    bus.write(b"\x42\x00")  # no cs(0)


out["sx1276_nss_high"] = case(c, nss_high)
c.close()

# --- SX1262 -------------------------------------------------------------------------
profile, c, m, bus, cs = chip_for("heltec_v3")
busy = m.Pin(profile["radio"]["pins"]["busy"])


def wait_busy():
    while busy():
        time.sleep_us(10)


def status():
    wait_busy()
    st = xfer(bus, cs, b"\xc0", 1)[1]
    return [(st >> 4) & 7, (st >> 1) & 7]


out["sx1262_initial_status"] = case(c, status)
out["sx1262_bad_opcode"] = case(c, lambda: (wait_busy(), xfer(bus, cs, b"\x42\x00"), status())[2])
out["sx1262_good_after_bad"] = case(c, status)
out["sx1262_modulation_sf13"] = case(
    c,
    lambda: (
        wait_busy(),
        xfer(bus, cs, b"\x8a\x01"),
        wait_busy(),
        xfer(bus, cs, b"\x8b\x0d\x04\x01\x00"),
        status(),
    )[2],
)
out["sx1262_unknown_register"] = case(
    c, lambda: (wait_busy(), xfer(bus, cs, b"\x0d\x01\x23\x45"), status())[2]
)
wait_busy()
xfer(bus, cs, b"\x82\xff\xff\xff")  # SetRx, continuous
out["sx1262_sleep_from_rx"] = case(c, lambda: (wait_busy(), xfer(bus, cs, b"\x84\x04"), status())[2])


def while_busy():
    wait_busy()
    xfer(bus, cs, b"\x80\x00")  # SetStandby(RC)
    wait_busy()
    xfer(bus, cs, b"\x89\x7f")  # Calibrate: BUSY high for 3.5 ms
    xfer(bus, cs, b"\x8a\x00")  # at once: ignored
    wait_busy()
    return xfer(bus, cs, b"\x11", 2)[2]  # GetPacketType: still LoRa


out["sx1262_command_while_busy"] = case(c, while_busy)
c.close()


# --- the real driver and a setting the SX1262 rejects -------------------------------
async def driver_rejected():
    profile = json.load(open("%s/heltec_v3.json" % BOARDS))
    chip, machine = radio.make_chip(profile, airwire.Air(PORT, ()), 1)
    chip.start()
    drv = mcu.make_modem(machine, profile, board.lora_cfg(profile, 7, 125))
    try:
        drv.configure({"coding_rate": 4})  # the driver allows "4/4"; the datasheet has no CR code 0
        result = "accepted"
    except RuntimeError as e:
        result = "RuntimeError: %s" % e
    chip.close()
    return {"driver": result, "invalid": chip.invalid, "log": chip.log}


out["driver_cr_4_4"] = asyncio.run(driver_rejected())
print(json.dumps(out))
