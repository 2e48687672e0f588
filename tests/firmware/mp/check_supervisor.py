# The supervisor under micropython's asyncio: it feeds the watchdog while every task
# beats, stops (and says why, with the traceback, through log) when one crashes or stalls.
import asyncio
import time

from fp.supervisor import Supervisor


class WDT:
    fed = 0

    def feed(self):
        self.fed += 1


logs = []


def log(lvl, msg):
    logs.append((lvl, msg))


async def healthy(sup, name):
    while True:
        sup.beat(name)
        await asyncio.sleep_ms(10)


async def crashes_after(ms):
    await asyncio.sleep_ms(ms)
    raise ValueError("sensor bus fell off")


async def stalls(sup):
    sup.beat("staller")
    await asyncio.sleep_ms(30)
    while True:  # stops beating but keeps the loop alive
        await asyncio.sleep_ms(10)


async def timer_then_crash(ms):
    # a plain timer (like app.py's boot-stable timer): never beats, then fails
    await asyncio.sleep_ms(ms)
    raise ValueError("timer broke")


async def scenario(kind):
    wdt = WDT()
    sup = Supervisor(wdt, 200, log)
    sup.start("ok", lambda: healthy(sup, "ok"))
    if kind == "crash":
        sup.start("bad", lambda: crashes_after(100))
    elif kind == "timer":
        # unwatched: 5 timeouts without a beat are not a stall, its crash still is a failure
        sup.start("timer", lambda: timer_then_crash(1000), watch=False)
    else:
        sup.start("staller", lambda: stalls(sup))
    why = await sup.run()
    return why, wdt.fed


async def out_of_memory(ms):
    await asyncio.sleep_ms(ms)
    raise MemoryError()


def full_heap(*args):
    raise MemoryError()  # what formatting a traceback or a log line meets on a full heap


async def oom():
    # a task dies of MemoryError on a heap so full that neither the traceback nor the log line
    # can be made: the supervisor still stops at once, with a reason, not at the stall timeout
    from fp import supervisor

    supervisor.exception_text = full_heap
    sup = Supervisor(WDT(), 2000, full_heap)
    sup.start("ok", lambda: healthy(sup, "ok"))
    sup.start("bad", lambda: out_of_memory(50))
    t0 = time.ticks_ms()
    why = await sup.run()
    return why, time.ticks_diff(time.ticks_ms(), t0)


why, fed = asyncio.run(scenario("crash"))
print("crash", fed > 0, "sensor bus fell off" in why, "Traceback" in why, len(logs))
why, fed = asyncio.run(scenario("stall"))
print("stall", fed > 0, "staller stalled" in why, logs[-1][0])
why, fed = asyncio.run(scenario("timer"))
print("timer", fed > 0, why.startswith("task timer crashed"), "stalled" not in why)
why, took = asyncio.run(oom())
print("oom", why, took < 1000)
