# A boot, for fp/app.py main(): config.json read and checked, safe mode when it is due, the
# board's HAL, journal, frame counter, device, role and supervisor made. Code a board runs once:
# fp/app.py imports it and drops it before the role runs (a 64K board needs the RAM), so nothing
# made here that lives on may be a function of this module (its globals would keep it all
# loaded): the closures, the log and the tasks the role keeps are fp/app.py's.
import sys

from fp import app
from fp.store import exists, firmware_root, unload

# Written first and removed last by `fieldpost provision module`: while it is on flash the
# module is being provisioned (its files may be half old, half new; its key may not be
# registered yet), so no role runs: safe mode says so in HELLO, LOG and STATUS.
PROVISIONING_MARKER = "provisioning.json"


async def boot(cfg_path, hal):
    # (supervisor, journal, hal) of a role ready to run; else, when safe mode or a rollback
    # ended the boot, what fp/app.py main() returns.
    # Code a board runs once (config validation, the board's HAL factory) is imported where it
    # is used and dropped after: a 64K board needs the RAM for the role.
    from fp import bootguard
    n = bootguard.enter()
    from fp import config
    if exists(PROVISIONING_MARKER):
        app._err("provisioning incomplete: %s is on flash" % PROVISIONING_MARKER)
        try:
            cfg = config.load(cfg_path)
        except config.ConfigError:
            cfg = None
        return await safe_mode("provisioning incomplete: run fieldpost provision module again", cfg, cfg_path)
    try:
        cfg = config.load(cfg_path)
    except config.ConfigError as e:
        app._err("config error: %s" % e)
        return await safe_mode("config error: %s" % e, None, cfg_path)
    # The validator is not needed again until a config command arrives (which imports
    # it afresh): drop it, a 64K board needs the RAM for the journal and the frames.
    del config
    unload("fp.config")
    if n > cfg["safe_boots"]:
        if exists(update_state_path()):  # crashing since an update: the old firmware comes back
            from fp import update
            return update.Updater().rollback("%d crashed boots" % (n - 1))
        reason = "%d crashed boots" % (n - 1)
        hold_ms = bootguard.safe_entered(reason)
        app._err("safe mode: %d boots without running %d s; role again in %d s"
                 % (n - 1, app.STABLE_MS // 1000, hold_ms // 1000))
        return await safe_mode(reason, cfg, cfg_path, hold_ms)
    import gc
    gc.collect()  # the validator's RAM back in one piece before the HAL and the role take theirs
    if hal is None:
        from fp.hal import board
        hal = board.make(cfg)
        del board
        unload("fp.hal.board")
    try:
        return _assemble(cfg, cfg_path, hal)
    except BaseException:
        # closed whatever happened: the unix port restarts in-process and binds its air port again
        hal.close()
        raise


def _assemble(cfg, cfg_path, hal):
    # the modules the role keeps, loaded once the validator is gone: its RAM is theirs
    import random
    import os
    from fp.device import FW_VERSION, Device
    from fp.fcnt import FrameCounter
    from fp.journal import Journal
    from fp.supervisor import Supervisor
    # retry jitter: seeded from config (reproducible tests) or from the hardware RNG,
    # so nodes that boot together do not retry in step
    seed = cfg["seed"]
    random.seed(seed if seed >= 0 else int.from_bytes(os.urandom(4), "big"))
    journal = Journal("journal", capacity=cfg["journal_max"], seg_bytes=cfg["journal_seg"])
    _clock_above(hal.clock, journal.max_t)
    if journal.migrated:
        app._err("journal: %d pending frame(s) of format 1 kept, signed again when sent" % journal.migrated)
    counter = FrameCounter("fcnt", block=cfg["fcnt_block"], floor=journal.max_fcnt + 1)
    if counter.damaged:
        app._err("frame counter file damaged: resuming at %d" % counter.next)
    log = app.StderrLog()
    dev = Device(cfg, cfg_path, hal, journal, counter, log)
    # bootguard stays loaded: the stable timer (fp/app.py) clears the count 20 s in, when the
    # role's heap is in use, and importing it only then would need a free piece that a full 64K
    # heap may not have
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
        role = Node(dev, hal, beat=app.call(sup.beat, "node"), trace=app._trace if cfg.get("trace") else None,
                    beat_ms=wdt_ms // 4)
        if dev.lw:
            dev.report_update()  # an update rolled back at this boot (fp/update.py) says so now
        if getattr(hal, "sleep_kind", None) == "deep" and hasattr(hal, "keep"):
            from fp import resume  # a board that deep-sleeps only
            resume.attach(hal, role, dev, counter, journal)
        sup.start("node", role.run)
    sup.start("stable", app.stable, watch=False)  # a timer: it never beats
    if exists(update_state_path()):
        from fp import update  # a firmware on trial only
        sup.start("update", app.call(update.confirm_when_done, dev, role), watch=False)
    print("fieldpost %s %s %s board=%s journal=%d fcnt=%d" % (FW_VERSION, cfg["role"], cfg["id"], hal.name,
                                                             len(journal), counter.next))
    return sup, journal, hal


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


def update_state_path():
    # fp/update.py's DIR + "/state", without importing the updater at boot (its names would fill
    # a virtual heltec_v2 bridge's qstr pool)
    return firmware_root() + ".update/state"


async def safe_mode(reason, cfg, cfg_path, hold_ms=0):
    # fp/safemode.py: loaded only when a board has to stay in it
    from fp import safemode
    return await safemode.run(reason, cfg, cfg_path, hold_ms)
