# Clocks for the HAL. Every role reads time through one of these, so a
# simulated day can run in seconds (issue 3: injectable clock): this one in real time,
# scaled or not; fp/hal/stepclock.py's stepped (tests; a board never loads it).
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
