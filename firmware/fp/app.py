# One asyncio main(): read config.json, build the board's HAL, run the role
# under the supervisor. Returns "reboot" (or raises) when the firmware must
# restart; main.py turns that into machine.reset() on boards and a fresh start
# on the unix port. The boot itself is fp/start.py's, dropped once the role runs:
# what stays loaded here is what runs after it (a 64K board needs the RAM).
import asyncio
import sys

STABLE_MS = 20000  # real ms of running before a boot counts as good


def _err(msg):
    sys.stderr.write(msg + "\n")


async def main(cfg_path="config.json", hal=None):
    from fp import start
    from fp.store import unload
    run = await start.boot(cfg_path, hal)
    del start
    unload("fp.start")
    if not isinstance(run, tuple):  # safe mode, or a rollback: the boot ended there
        return run
    sup, journal, hal = run
    del run
    # Collect whenever a quarter of what is free now has been allocated, not only when an
    # allocation fails: a small heap then stays in fewer pieces (a 64K day ran out of one
    # 200-byte piece with more than that free in all; tests/firmware/mp/sim_day.py does the same)
    import gc
    gc.collect()
    gc.threshold(gc.mem_free() // 4)
    try:
        try:
            why = await sup.run()
        finally:
            journal.close()
    finally:
        # closed whatever happened: the unix port restarts in-process and binds its air port again
        hal.close()
    _err("restart: %s" % why)
    return why


async def stable():
    await asyncio.sleep_ms(STABLE_MS)
    from fp import bootguard  # loaded since the boot (fp/start.py)
    bootguard.clear()
    while True:
        await asyncio.sleep_ms(3600000)


def call(fn, *args):
    # fn(*args) to call later, made here: a closure of fp/start.py would keep the boot code loaded
    return lambda: fn(*args)


def _trace(event, value):
    print("T", event, value)


class StderrLog:
    # Until the link is up (and for nodes, always) log lines go to stderr.
    def __init__(self):
        self.sink = None

    def __call__(self, lvl, msg):
        if self.sink is not None:
            self.sink(lvl, msg)
        else:
            _err("%s %s" % (lvl, msg))
