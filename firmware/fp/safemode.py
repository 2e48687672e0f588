# Safe mode (fp/app.py): no role, only the serial link, announcing why. Its own module: a
# board that runs its role never loads it, and a 64K board needs that RAM for the role.
import asyncio
import json
import sys
import time

from fp import bootguard
from fp.device import FW_VERSION
from fp.supervisor import exception_text


def _err(msg):
    sys.stderr.write(msg + "\n")


async def run(reason, cfg, cfg_path, hold_ms=0):
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
