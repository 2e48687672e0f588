# One asyncio main(): read config.json, build the board's HAL, run the role
# under the supervisor. Returns "reboot" (or raises) when the firmware must
# restart; main.py turns that into machine.reset() on boards and a fresh start
# on the unix port.
import asyncio
import json
import sys
import time

from fp import bootguard
from fp.device import FW_VERSION, Device
from fp.fcnt import FrameCounter
from fp.journal import Journal
from fp.supervisor import Supervisor, exception_text

STABLE_MS = 20000  # real ms of running before a boot counts as good
# Written first and removed last by `fieldpost provision module`: while it is on flash the
# module is being provisioned (its files may be half old, half new; its key may not be
# registered yet), so no role runs: safe mode says so in HELLO, LOG and STATUS.
PROVISIONING_MARKER = "provisioning.json"


def _err(msg):
    sys.stderr.write(msg + "\n")


async def main(cfg_path="config.json", hal=None):
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
    if hal is None:
        from fp.hal import board
        hal = board.make(cfg)
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
            _deep_sleep_state(hal, role, dev, counter, journal)
        sup.start("node", role.run)
    # Collect whenever a quarter of what is free now has been allocated, not only when an
    # allocation fails: a small heap then stays in fewer pieces (a 64K day ran out of one
    # 200-byte piece with more than that free in all; tests/firmware/mp/sim_day.py does the same)
    import gc
    gc.collect()
    gc.threshold(gc.mem_free() // 4)
    sup.start("stable", _stable, watch=False)  # a timer: it never beats
    if _exists(update_state_path()):
        sup.start("update", lambda: _confirm_update(dev, role), watch=False)
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


def _deep_sleep_state(hal, node, dev, counter, journal):
    # A board that deep-sleeps boots again on waking: what the node keeps across the
    # sleep goes in RTC memory (fp/resume.py). Taken back here after a deep-sleep wake;
    # packed by the HAL right before it sleeps (hal.keep: called with the wake time).
    from fp import resume
    rec = None
    if hal.resumed:
        day = dev.budget.day
        rec = resume.unpack(hal.resumed, len(dev.budget._air), len(day.counts) if day else 0)
    if rec:
        resume.restore(rec, hal.clock, counter, dev.budget, journal.max_fcnt + 1)
        dev.interval_ms = rec["interval_ms"]
        node.resume = rec["sched"]
        node.boot_ms = hal.clock.ms()  # the clock went on: uptime counts from this boot

    def keep(wake_ms):
        bootguard.clear()  # an ordered sleep, not a crash: the wake must not count toward safe mode
        return resume.pack(wake_ms, hal.clock._wall0, node.sched, counter, dev.interval_ms, dev.budget)
    hal.keep = keep


def _exists(path):
    import os
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def unload(name):
    # Forget a module so the GC can take its code back (an import brings it back).
    sys.modules.pop(name, None)
    pkg, _, leaf = name.rpartition(".")
    parent = sys.modules.get(pkg)
    if parent is not None and hasattr(parent, leaf):
        delattr(parent, leaf)


async def _stable():
    await asyncio.sleep_ms(STABLE_MS)
    bootguard.clear()
    while True:
        await asyncio.sleep_ms(3600000)


def update_state_path():
    # fp/update.py's firmware_root() + DIR + "/state", without importing the updater at boot (its
    # names would fill a virtual heltec_v2 bridge's qstr pool): <root>/fp/app.py -> <root>/
    here = __file__.rsplit("/", 2)
    return (here[0] + "/" if len(here) == 3 else "") + ".update/state"


async def _confirm_update(dev, role):
    # A firmware on trial after an update (fp/update.py) is kept once it has done its job once:
    # a bridge's link handshake, a node's reading acknowledged by the edge. Until then a reboot
    # counts a trial boot, and too many bring the old firmware back.
    from fp import update
    link = getattr(role, "link", None)
    while not (dev.stats["acked"] > 0 or (link is not None and link.up)):
        await asyncio.sleep_ms(200)
    if update.Updater().confirm():
        print("fieldpost update: confirmed", FW_VERSION)
        if dev.lw:
            dev.report_update()  # a node says so on FPort 6 (a bridge's next HELLO does)
    while True:
        await asyncio.sleep_ms(3600000)


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
    # No role: only the serial link (if the board has one), announcing safe mode
    # and the reason in HELLO, LOG and STATUS, so the edge and provisioning see it.
    # hold_ms > 0 (crashed boots): after that long (virtual: time_scale applies on
    # the unix port) the role is tried again (fp/bootguard.py); 0: until fixed.
    from fp import frame as fr
    from fp.link import Link
    from fp.linkio import LinkIO
    print("fieldpost %s SAFE MODE: %s" % (FW_VERSION, reason))
    uart = None
    try:
        from fp.hal import board
        profile = board.find_profile(cfg["board"] if cfg else "unix")
        if profile.get("mcu") == "unix" or board.VIRTUAL:
            from fp.hal.unix import shared_uart
            uart = shared_uart()
        else:
            import machine
            u = profile["uart"]
            uart = machine.UART(u["id"], baudrate=u.get("baudrate", 115200), tx=u["tx"], rx=u["rx"],
                                timeout=0)
    except Exception as e:
        _err("safe mode without link: %s" % exception_text(e))
    hello = {"id": (cfg or {}).get("id", "0000000000000000"), "fw": FW_VERSION,
             "role": (cfg or {}).get("role", "node"), "board": (cfg or {}).get("board", "?"),
             "safe": reason[:80]}
    # Safe mode is where a fix is most wanted: a firmware update is taken over the link (the
    # module's key from its config authenticates the commit), and staged, it reboots into it.
    link = Link(hello, time.ticks_ms, accept=(fr.UPDATE_OFFER, fr.UPDATE_CHUNK, fr.UPDATE_COMMIT))
    staged = []

    def on_event(ev):
        from fp.link import EV_RECEIVED
        if ev[0] != EV_RECEIVED:
            return
        if not cfg:
            link.nack(ev[2], fr.NACK_INVALID, "update: no config, no key")
            return
        from fp import update_rx
        from binascii import unhexlify
        if not staged:
            staged.append(update_rx.Receiver(unhexlify(cfg["key"]), cfg["board"], FW_VERSION))
        if update_rx.on_frame(staged[0], link, ev[1], ev[2], ev[3]):
            staged.append(True)
        io.flush()

    io = LinkIO(uart, link, on_event) if uart else None
    if io:
        asyncio.create_task(io.run())
    end = time.ticks_add(time.ticks_ms(), int(hold_ms / ((cfg or {}).get("time_scale") or 1)))
    tick = 0
    while not hold_ms or time.ticks_diff(end, time.ticks_ms()) > 0:
        if len(staged) > 1:
            await asyncio.sleep_ms(200)  # the ACK of the commit goes out first
            return "update staged in safe mode"
        if tick % 50 == 0 and io and link.up and link.can_send():  # every 10 s
            io.send(fr.LOG, json.dumps({"lvl": "error", "msg": "safe mode: " + reason}).encode(), None)
            io.send(fr.STATUS, json.dumps({"safe": True, "reason": reason[:120]}).encode(), None)
        tick += 1
        await asyncio.sleep_ms(200)
    bootguard.leave()
    return "safe mode over after %d s: the role runs again" % (hold_ms // 1000)
