# The radio driver's RAM on the unix port: the firmware's radio HAL and the
# emulated chip imported and built, then micropython-lib's driver constructed
# on it (init and configure over SPI) and one packet sent, as fp/hal/mcu does on
# the board. Run it under the board's -X heapsize. Prints JSON (bytes).
# usage: micropython radio_heap.py <board profile json> <port>
import gc
import json
import sys


def alloc():
    gc.collect()
    return gc.mem_alloc()


m0 = alloc()
from fp.hal import airwire, board, mcu  # noqa: E402
from fp.hal.emu import radio  # noqa: E402

profile = json.load(open(sys.argv[1]))
chip, machine = radio.make_chip(profile, airwire.Air(int(sys.argv[2]), ()), 1000)
m1 = alloc()
drv = mcu.make_modem(machine, profile, board.lora_cfg(profile, 12, 125))
m2 = alloc()
drv.prepare_send(bytes(29))
drv.start_send()
while drv.poll_send() is True:
    chip.poll()
m3 = alloc()
chip.close()
print(
    json.dumps({"hal_and_emulator": m1 - m0, "driver": m2 - m1, "after_send": m3 - m1, "free": gc.mem_free()})
)
