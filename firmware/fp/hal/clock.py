# Clocks for the HAL. Every role reads time through one of these, so a
# simulated day can run in seconds (issue 3: injectable clock).
#   ms()            monotonic milliseconds since boot (virtual when scaled)
#   time()          Unix seconds (from the edge's HELLO_ACK when there is no RTC)
#   set_time(t)     set the wall clock
#   await sleep_ms(ms)
#   real_ms(ms)     the real milliseconds that virtual ms take (for I/O timeouts)
import asyncio
from time import ticks_diff, ticks_ms


class Clock:
    # Real time, optionally scaled: `scale` virtual ms pass per real ms. Ticks
    # wrap (2^30 ms on boards), so the elapsed time is accumulated on each read.
    def __init__(self, scale=1, wall=0):
        self.scale = scale
        self._last = ticks_ms()
        self._acc = 0.0
        self._wall0 = wall  # Unix seconds at ms() == 0

    def ms(self):
        now = ticks_ms()
        self._acc += ticks_diff(now, self._last) * self.scale
        self._last = now
        return int(self._acc)

    def time(self):
        return self._wall0 + self.ms() // 1000

    def set_time(self, unix_s):
        self._wall0 = int(unix_s) - self.ms() // 1000

    def real_ms(self, vms):
        return int(vms / self.scale) if vms > 0 else 0

    def resume(self, ms, wall_s):
        # After a deep sleep (a boot): time goes on from where the sleep ended (fp/resume.py).
        self._last = ticks_ms()
        self._acc = float(ms)
        self._wall0 = wall_s

    async def sleep_ms(self, vms):
        await asyncio.sleep_ms(self.real_ms(vms))


class StepClock:
    # Discrete virtual time for a single-task simulation: sleeping advances the
    # clock at once. Only correct when one task owns the clock (the simulated
    # day runs one node loop against a simulated medium).
    scale = 0

    def __init__(self, start_ms=0, wall=1700000000):
        self.t = start_ms
        self._wall0 = wall

    def ms(self):
        return self.t

    def time(self):
        return self._wall0 + self.t // 1000

    def set_time(self, unix_s):
        self._wall0 = int(unix_s) - self.t // 1000

    def real_ms(self, vms):
        return 0

    def advance(self, vms):
        if vms > 0:
            self.t += int(vms)

    async def sleep_ms(self, vms):
        self.advance(vms)
        await asyncio.sleep_ms(0)
