# The HAL clock of a simulated day (fp/hal/clock.py says what a clock does): time steps at
# once when a task sleeps. For tests only, so a board never loads it with the real clock.
import asyncio


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
