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

from fp import app


def run(cfg_path):
    while True:
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
        time.sleep_ms(100)


run(sys.argv[1] if len(sys.argv) > 1 else "config.json")
