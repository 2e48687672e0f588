# The watchdog is fed only by the supervisor, and only while every task is
# alive: each watched task calls beat(name) at least every timeout/4; a task
# that stops beating, or ends, or raises, stops the feeding and the board resets
# (on the unix port: main() returns and main.py restarts the firmware).
# Beats and the timeout are in real ticks_ms, whatever the clock's time_scale:
# the roles sleep in scaled slices (clock.sleep_ms) short enough in real time.
# A task that does not beat (a plain timer) is started with watch=False: its
# crash or end still restarts, but it cannot be "stalled" (before that option,
# the boot-stable timer, which never beat, restarted every module once
# watchdog_s of real time had passed: every 30 s, 600 virtual s at time_scale 20).
import asyncio
import sys
from time import ticks_diff, ticks_ms


def exception_text(e):
    try:
        import io
        buf = io.StringIO()
        sys.print_exception(e, buf)
        return buf.getvalue()
    except Exception:
        return repr(e)


class Supervisor:
    def __init__(self, wdt, timeout_ms, log=None):
        self.wdt = wdt
        self.timeout_ms = timeout_ms
        self.log = log or (lambda lvl, msg: None)
        self.beats = {}
        self.tasks = []
        self.failure = None  # text saying why the firmware must restart
        self._done = asyncio.Event()

    def beat(self, name):
        self.beats[name] = ticks_ms()

    def start(self, name, fn, watch=True):
        if watch:
            self.beats.setdefault(name, ticks_ms())
        self.tasks.append((name, asyncio.create_task(self._guard(name, fn))))

    async def _guard(self, name, fn):
        try:
            await fn()
            self.fail("task %s ended" % name)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            if e.__class__.__name__ == "Reboot":  # the unix board's reset(): ordered, not a crash
                self.failure = "reboot"
                self._done.set()
                return
            try:
                why = "task %s crashed: %s" % (name, exception_text(e))
            except MemoryError:
                # a full heap has no room for the traceback: a constant needs none. (Left to
                # propagate, it ended the guard and the failure waited for the stall timeout.)
                why = "a task crashed: out of memory"
            self.fail(why)

    def fail(self, why):
        if self.failure is None:
            self.failure = why
            self._done.set()  # before the log: a log line that runs out of memory hides nothing
            try:
                self.log("error", why[:400])
            except MemoryError:
                pass
        self._done.set()

    def check(self):
        now = ticks_ms()
        for name, t in self.beats.items():
            if ticks_diff(now, t) > self.timeout_ms:
                return "task %s stalled for %d ms" % (name, ticks_diff(now, t))
        return None

    async def run(self):
        # Returns when the firmware must restart; feeds the watchdog until then.
        while self.failure is None:
            stalled = self.check()
            if stalled:
                self.fail(stalled)
                break
            self.wdt.feed()
            try:
                await asyncio.wait_for_ms(self._done.wait(), max(10, self.timeout_ms // 4))
            except asyncio.TimeoutError:  # noqa: UP041 (MicroPython: no builtin TimeoutError)
                pass
        for _, t in self.tasks:
            t.cancel()
        await asyncio.sleep_ms(0)
        return self.failure
