# One asyncio main(): read config.json, build the board's HAL, run the role
# under the supervisor. Returns "reboot" (or raises) when the firmware must
# restart; main.py turns that into machine.reset() on boards and a fresh start
# on the unix port.
import asyncio
import sys

from fp.device import FW_VERSION, Device
from fp.store import unload
from fp.fcnt import FrameCounter
from fp.journal import Journal
from fp.supervisor import Supervisor

STABLE_MS = 20000  # real ms of running before a boot counts as good
# Written first and removed last by `fieldpost provision module`: while it is on flash the
# module is being provisioned (its files may be half old, half new; its key may not be
# registered yet), so no role runs: safe mode says so in HELLO, LOG and STATUS.
PROVISIONING_MARKER = "provisioning.json"


def _err(msg):
    sys.stderr.write(msg + "\n")


async def main(cfg_path="config.json", hal=None):
    # Code a board runs once (config validation, the board's HAL factory) is imported where it
    # is used and dropped after: a 64K board needs the RAM for the role.
    from fp import bootguard
    n = bootguard.enter()
    from fp import config
    if _exists(PROVISIONING_MARKER):
        _err("provisioning incomplete: %s is on flash" % PROVISIONING_MARKER)
        try:
            cfg = config.load(cfg_path)
        except config.ConfigError:
            cfg = None
        return await safe_mode("provisioning incomplete: run fieldpost provision module again", cfg, cfg_path)
    try:
        cfg = config.load(cfg_path)
    except config.ConfigError as e:
        _err("config error: %s" % e)
        return await safe_mode("config error: %s" % e, None, cfg_path)
    # The validator is not needed again until a config command arrives (which imports
    # it afresh): drop it, a 64K board needs the RAM for the journal and the frames.
    del config
    unload("fp.config")
    if n > cfg["safe_boots"]:
        if _exists(update_state_path()):  # crashing since an update: the old firmware comes back
            from fp import update
            return update.Updater().rollback("%d crashed boots" % (n - 1))
        reason = "%d crashed boots" % (n - 1)
        hold_ms = bootguard.safe_entered(reason)
        _err("safe mode: %d boots without running %d s; role again in %d s"
             % (n - 1, STABLE_MS // 1000, hold_ms // 1000))
        return await safe_mode(reason, cfg, cfg_path, hold_ms)
    import gc
    gc.collect()  # the validator's RAM back in one piece before the HAL and the role take theirs
    if hal is None:
        from fp.hal import board
        hal = board.make(cfg)
        del board
        unload("fp.hal.board")
    try:
        why = await _run(cfg, cfg_path, hal)
    finally:
        # closed whatever happened: the unix port restarts in-process and binds its air port again
        hal.close()
    _err("restart: %s" % why)
    return why


async def _run(cfg, cfg_path, hal):
    import random
    import os
    # retry jitter: seeded from config (reproducible tests) or from the hardware RNG,
    # so nodes that boot together do not retry in step
    seed = cfg["seed"]
    random.seed(seed if seed >= 0 else int.from_bytes(os.urandom(4), "big"))
    journal = Journal("journal", capacity=cfg["journal_max"], seg_bytes=cfg["journal_seg"])
    _clock_above(hal.clock, journal.max_t)
    if journal.migrated:
        _err("journal: %d pending frame(s) of format 1 kept, signed again when sent" % journal.migrated)
    counter = FrameCounter("fcnt", block=cfg["fcnt_block"], floor=journal.max_fcnt + 1)
    if counter.damaged:
        _err("frame counter file damaged: resuming at %d" % counter.next)
    log = _StderrLog()
    dev = Device(cfg, cfg_path, hal, journal, counter, log)
    # bootguard stays loaded: _stable clears the count 20 s in, when the role's heap is in use,
    # and importing it only then would need a free piece that a full 64K heap may not have
    from fp import bootguard
    dev.safe_reason = bootguard.recovered()  # said in the first status, once the radio works
    if dev.safe_reason:
        log("warn", "back from safe mode (%s)" % dev.safe_reason)
    wdt_ms = getattr(hal, "wdt_ms", 0) or int(cfg["watchdog_s"] * 1000)
    if getattr(hal, "wdt_warning", None):
        log("warn", hal.wdt_warning)
    sup = Supervisor(hal.wdt, wdt_ms, log)
    if cfg["role"] == "bridge":
        from fp.roles.bridge import Bridge
        role = Bridge(dev, hal, beat=sup.beat)
        log.sink = role.log
        for name, fn in role.tasks():
            sup.start(name, fn)
    else:
        from fp.roles.node import Node
        role = Node(dev, hal, beat=lambda: sup.beat("node"), trace=_trace if cfg.get("trace") else None,
                    beat_ms=wdt_ms // 4)
        if dev.lw:
            dev.report_update()  # an update rolled back at this boot (fp/update.py) says so now
        if getattr(hal, "sleep_kind", None) == "deep" and hasattr(hal, "keep"):
            from fp import resume  # a board that deep-sleeps only
            resume.attach(hal, role, dev, counter, journal)
        sup.start("node", role.run)
    # Collect whenever a quarter of what is free now has been allocated, not only when an
    # allocation fails: a small heap then stays in fewer pieces (a 64K day ran out of one
    # 200-byte piece with more than that free in all; tests/firmware/mp/sim_day.py does the same)
    import gc
    gc.collect()
    gc.threshold(gc.mem_free() // 4)
    sup.start("stable", _stable, watch=False)  # a timer: it never beats
    if _exists(update_state_path()):
        from fp import update  # a firmware on trial only
        sup.start("update", lambda: update.confirm_when_done(dev, role), watch=False)
    print("fieldpost %s %s %s board=%s journal=%d fcnt=%d" % (FW_VERSION, cfg["role"], cfg["id"], hal.name,
                                                             len(journal), counter.next))
    try:
        return await sup.run()
    finally:
        journal.close()


def _clock_above(clock, t):
    # The clock starts over at a cold boot, but journaled readings keep their sample times
    # (0.1 s) on the clock as it was: it goes on from just above the newest, so no age comes
    # out negative. An age is then the time a reading waited while the module ran; the time
    # it was off is unknown (docs/radio.md 0.9). A deep-sleep wake puts the clock back later
    # (fp/resume.py), at or above this. The wall time is kept as it was.
    now = clock.ms()
    ms = (t + 10) * 100
    if t < 0 or now >= ms:
        return
    if hasattr(clock, "resume"):
        clock.resume(ms, clock._wall0 - (ms - now) // 1000)
    else:  # a stepped clock (simulation)
        clock.advance(ms - now)


def _exists(path):
    import os
    try:
        os.stat(path)
        return True
    except OSError:
        return False


async def _stable():
    await asyncio.sleep_ms(STABLE_MS)
    from fp import bootguard  # loaded since _run
    bootguard.clear()
    while True:
        await asyncio.sleep_ms(3600000)


def update_state_path():
    # fp/update.py's firmware_root() + DIR + "/state", without importing the updater at boot (its
    # names would fill a virtual heltec_v2 bridge's qstr pool): <root>/fp/app.py -> <root>/
    here = __file__.rsplit("/", 2)
    return (here[0] + "/" if len(here) == 3 else "") + ".update/state"


def _trace(event, value):
    print("T", event, value)


class _StderrLog:
    # Until the link is up (and for nodes, always) log lines go to stderr.
    def __init__(self):
        self.sink = None

    def __call__(self, lvl, msg):
        if self.sink is not None:
            self.sink(lvl, msg)
        else:
            _err("%s %s" % (lvl, msg))


async def safe_mode(reason, cfg, cfg_path, hold_ms=0):
    # fp/safemode.py: loaded only when a board has to stay in it
    from fp import safemode
    return await safemode.run(reason, cfg, cfg_path, hold_ms)
