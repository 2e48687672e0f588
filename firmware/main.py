# Fieldpost module firmware entry point.
# Boards: runs at boot after boot.py; the role comes from config.json.
# Unix port (virtual modules): cwd is the module's own directory (its
# config.json, journal and counters live there) and the firmware directory is on
# MICROPYPATH, as edge.sim starts it:
#     cd <module dir> && MICROPYPATH=<firmware>:.frozen micropython <firmware>/main.py [config.json]
# The UART is the fd named by FP_UART_FD (see fp/hal/unix_uart.py).
import asyncio
import sys
import time


# The board's hardware on the unix port (not in a real board's bundle): kept across restarts.
_HARDWARE = ("fp.hal.unix", "fp.hal.unix_uart", "fp.hal.air", "fp.hal.airwire", "fp.hal.emu")


def _update_at_boot():
    # A staged firmware update is swapped in (or rolled back) before any other firmware file is
    # imported, so what runs is the old set or the new one, never a mix (fp/update.py). Its area
    # (.update beside this file) exists only while an update is staged or on trial: without it,
    # nothing is imported at boot.
    import os
    here = __file__.rpartition("/")[0]
    try:
        os.stat((here + "/" if here else "") + ".update")
    except OSError:
        return
    try:
        from fp import update
        done = update.Updater().at_boot()
        if done:
            print("fieldpost update:", done)
    except Exception as e:  # an updater that fails must not keep the module from booting
        sys.print_exception(e)
    # not needed again unless an update arrives (then imported afresh): a 64K board wants the RAM
    sys.modules.pop("fp.update", None)
    package = sys.modules.get("fp")
    if package is not None and hasattr(package, "update"):
        delattr(package, "update")


def _forget_firmware():
    # The unix port restarts in-process: drop the firmware's modules so the next round imports
    # the files on "flash" afresh, as a board's reset does (they may have been updated).
    for name in list(sys.modules):
        top = name.split(".")[0]
        if top in ("fp", "lora") and not any(name.startswith(hw) for hw in _HARDWARE):
            del sys.modules[name]


def run(cfg_path):
    while True:
        _update_at_boot()
        from fp import app
        try:
            why = asyncio.run(app.main(cfg_path))
        except Exception as e:  # died before the supervisor was up: a crash at boot
            sys.print_exception(e)
            why = "crash at boot: %r" % (e,)
        asyncio.new_event_loop()  # a clean loop for the restart
        if sys.platform != "linux":
            import machine
            machine.reset()
        # The unix port restarts in-process, as a board resets: the boot counter
        # (fp/bootguard.py) counts the crashes and safe mode ends a crash loop.
        print("fieldpost restart:", why.split("\n")[0] if why else why)
        del app
        _forget_firmware()
        time.sleep_ms(100)


run(sys.argv[1] if len(sys.argv) > 1 else "config.json")
