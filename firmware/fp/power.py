# Power model of a virtual module (issue 13): time per state, charge per day.
# The unix HAL tells it when the MCU and the radio change state; each state's
# current comes from the board profile's "power" section (datasheet figures,
# cited there). Charge = sum of (MCU current + radio current + board quiescent)
# x time; a wake from deep sleep also costs wake_ms of the MCU active (an ESP32
# boots again: ROM, MicroPython, the imports). Pure arithmetic on the HAL clock:
# nothing here touches hardware.
MCU_STATES = ("active", "light", "deep")
RADIO_STATES = ("tx", "rx", "standby", "sleep")
_DAY_MS = 86400000


class PowerModel:
    def __init__(self, power, clock, tx_dbm=14):
        mcu = power["mcu_ma"]
        radio = power["radio_ma"]
        self._mcu_ma = [mcu[s] for s in MCU_STATES]
        tx = radio["tx"]
        # the TX current at the configured power: the datasheet point at or above it
        # (conservative), else the highest given
        levels = sorted(int(k) for k in tx)
        at = [p for p in levels if p >= tx_dbm]
        self._radio_ma = [tx[str(at[0] if at else levels[-1])], radio["rx"], radio["standby"], radio["sleep"]]
        self.board_ma = power.get("board_ma", 0.0)
        self.wake_ms = power.get("wake_ms", 0)
        self.clock = clock
        self._mcu = 0  # active
        self._radio = 2  # standby after the driver's init
        self._t = clock.ms()
        self._t0 = self._t
        self.state_ms = [0] * (len(MCU_STATES) + len(RADIO_STATES))  # time per state, for reports
        self.mas = 0.0  # charge, mA x s
        self.wakes = 0

    def rebase(self, clock):
        # After a virtual deep-sleep boot: a new clock object on the same timeline, resumed by
        # fp/app.py after this; the first reading of it only sets the start of the next state.
        self.clock = clock
        self._t = None

    def _accrue(self):
        now = self.clock.ms()
        if self._t is None:
            self._t = now
            return
        dt = now - self._t
        if dt > 0:
            self.mas += (self._mcu_ma[self._mcu] + self._radio_ma[self._radio] + self.board_ma) * dt / 1000
            self.state_ms[self._mcu] += dt
            self.state_ms[len(MCU_STATES) + self._radio] += dt
        self._t = now

    def mcu(self, state):
        self._accrue()
        new = MCU_STATES.index(state)
        if self._mcu == 2 and new == 0 and self.wake_ms:  # out of deep sleep: a boot
            self.mas += self._mcu_ma[0] * self.wake_ms / 1000
            self.state_ms[0] += self.wake_ms
            self.wakes += 1
        self._mcu = new

    def radio(self, state):
        self._accrue()
        self._radio = RADIO_STATES.index(state)

    def mah_per_day(self):
        self._accrue()
        elapsed = self._t - self._t0
        if elapsed <= 0:
            return 0.0
        return self.mas / 3.6 * _DAY_MS / elapsed / 1000


def battery_days(capacity_mah, mah_day):
    return capacity_mah / mah_day if mah_day > 0 else 0
