# An emulated Semtech SX1262 (unix port only), as the SX1261/2 datasheet
# (rev 2.1, "DS" below) describes it to a host on SPI, in LoRa mode:
#   - the command interface (DS 8.3, 13): one command per NSS low period,
#     opcode then parameters; write commands act on NSS rising; read commands
#     answer on MISO (status byte, then data; ReadRegister/ReadBuffer after one
#     NOP); BUSY goes high after every command for its processing time, stays
#     high in Sleep, and a command sent while BUSY is high is ignored;
#   - the status byte (DS 13.5.1): chip mode in bits 6:4, command status in
#     bits 3:1 (0x4 processing error for an unknown opcode or bad parameters,
#     0x5 failure to execute, e.g. SetSleep outside STDBY, 0x2 data available
#     after RxDone, 0x6 TX done);
#   - modes: SLEEP (warm/cold start, woken by NSS falling), STDBY_RC,
#     STDBY_XOSC, FS, TX, RX (single, with timeout, continuous); TX and RX end
#     in STDBY_RC (the default fallback);
#   - the 256-byte data buffer with its TX/RX base addresses, GetRxBufferStatus,
#     GetPacketStatus (RSSI -value/2 dBm, SNR value/4 dB), GetRssiInst;
#   - IRQs (DS 13.3): IrqMask and DIO1Mask from SetDioIrqParams, GetIrqStatus,
#     ClearIrqStatus, the DIO1 line; GetDeviceErrors/ClearDeviceErrors with
#     XOSC_START_ERR after the TCXO is set up (DS 13.3.6);
#   - the registers the datasheet names (sync word 0x0740, IQ polarity 0x0736,
#     RX gain 0x08AC, TX clamp 0x08D8, ... with their reset values); writes
#     elsewhere are logged;
#   - NRESET low holds the chip in reset; BUSY stays high 3.5 ms after.
# Invalid use is logged (Chip.bad) and, where the chip reports it, shows in
# the status byte, so a driver checking it sees the error as on hardware.
# GFSK, CAD, continuous wave and RX duty cycle are not emulated (logged).
from fp.hal.emu.bus import Line
from fp.hal.emu.chip import Chip, symbols_x4, toa_us
from micropython import const

_ST_SLEEP = const(0)
_ST_RC = const(2)
_ST_XOSC = const(3)
_ST_FS = const(4)
_ST_RX = const(5)
_ST_TX = const(6)

_CS_OK = const(0)
_CS_DATA = const(2)
_CS_ERROR = const(4)
_CS_FAIL = const(5)
_CS_TX_DONE = const(6)

_IRQ_TX_DONE = const(0x001)
_IRQ_RX_DONE = const(0x002)
_IRQ_PREAMBLE = const(0x004)
_IRQ_HEADER_VALID = const(0x010)
_IRQ_CRC_ERR = const(0x040)
_IRQ_TIMEOUT = const(0x200)

_XOSC_START_ERR = const(0x20)

_BUSY_US = const(20)  # a plain command (DS 8.3.1: BUSY low within tens of us)
_BUSY_MODE_US = const(100)  # SetTx / SetRx / SetFs: the synthesizer locks
_CALIB_US = const(3500)  # Calibrate(0x7F), and at power-up / reset (DS 9.2.1)
_WARM_WAKE_US = const(340)  # SLEEP (warm start) to STDBY_RC
_STEP_US = 15.625  # RX/TX timeout unit (DS 13.1.4)

# LoRa bandwidth codes of SetModulationParams (DS 13.4.5.2)
_BW = {0x00: 7810, 0x08: 10420, 0x01: 15630, 0x09: 20830, 0x02: 31250, 0x0A: 41670, 0x03: 62500, 0x04: 125000,
       0x05: 250000, 0x06: 500000}
# registers in the DS 12 map, with their reset values
_REGS = {0x06B8: 0x01, 0x06B9: 0x00, 0x06BC: 0x1D, 0x06BD: 0x0F, 0x06BE: 0x10, 0x06BF: 0x21, 0x06C0: 0x97,
         0x06C1: 0x23, 0x06C2: 0x52, 0x06C3: 0x25, 0x06C4: 0x56, 0x06C5: 0x53, 0x06C6: 0x65, 0x06C7: 0x64,
         0x06CD: 0x00, 0x06CE: 0x00, 0x0736: 0x0D, 0x0740: 0x14, 0x0741: 0x24, 0x0819: 0x00, 0x081A: 0x00,
         0x081B: 0x00, 0x081C: 0x00, 0x0889: 0x00, 0x08AC: 0x94, 0x08D8: 0xC8, 0x08E7: 0x18, 0x0902: 0x00,
         0x0911: 0x05, 0x0912: 0x05, 0x0920: 0x00, 0x0944: 0x00}
# opcode: (name, parameter bytes); a None count takes any number (buffer/register access)
_CMDS = {
    0x80: ("SetStandby", 1), 0x84: ("SetSleep", 1), 0xC1: ("SetFs", 0), 0x83: ("SetTx", 3),
    0x82: ("SetRx", 3), 0x9F: ("StopTimerOnPreamble", 1), 0x94: ("SetRxDutyCycle", 6),
    0xC5: ("SetCad", 0), 0xD1: ("SetTxContinuousWave", 0), 0xD2: ("SetTxInfinitePreamble", 0),
    0x96: ("SetRegulatorMode", 1), 0x89: ("Calibrate", 1), 0x98: ("CalibrateImage", 2),
    0x95: ("SetPaConfig", 4), 0x93: ("SetRxTxFallbackMode", 1), 0x0D: ("WriteRegister", None),
    0x1D: ("ReadRegister", None), 0x0E: ("WriteBuffer", None), 0x1E: ("ReadBuffer", None),
    0x08: ("SetDioIrqParams", 8), 0x12: ("GetIrqStatus", 0), 0x02: ("ClearIrqStatus", 2),
    0x9D: ("SetDIO2AsRfSwitchCtrl", 1), 0x97: ("SetDIO3AsTcxoCtrl", 4), 0x86: ("SetRfFrequency", 4),
    0x8A: ("SetPacketType", 1), 0x11: ("GetPacketType", 0), 0x8E: ("SetTxParams", 2),
    0x8B: ("SetModulationParams", 4), 0x8C: ("SetPacketParams", 6), 0x88: ("SetCadParams", 7),
    0x8F: ("SetBufferBaseAddress", 2), 0xA0: ("SetLoRaSymbNumTimeout", 1), 0xC0: ("GetStatus", 0),
    0x15: ("GetRssiInst", 0), 0x13: ("GetRxBufferStatus", 0), 0x14: ("GetPacketStatus", 0),
    0x17: ("GetDeviceErrors", 0), 0x07: ("ClearDeviceErrors", 2), 0x10: ("GetStats", 0),
    0x00: ("ResetStats", 6),
}
# DS 13.1.14.1 optimal PA settings: (paDutyCycle, hpMax) -> dBm at SetTxParams +22
_PA_OPTIMAL = {(0x04, 0x07): 22, (0x03, 0x05): 20, (0x02, 0x03): 17, (0x02, 0x02): 14}
_STATES = {_ST_SLEEP: "sleep", _ST_RC: "stdby_rc", _ST_XOSC: "stdby_xosc", _ST_FS: "fs", _ST_RX: "rx",
           _ST_TX: "tx"}


class SX1262(Chip):
    def __init__(self, air, scale=1, trace=None):
        Chip.__init__(self, "sx1262", air, scale, trace)
        self.lines = {
            "NSS": Line(self, "NSS", False),
            "NRESET": Line(self, "NRESET", False),
            "BUSY": Line(self, "BUSY", True),
            "DIO1": Line(self, "DIO1", True),
        }
        self.lines["NSS"].level = 1
        self.lines["NRESET"].level = 1
        self.buf = bytearray(256)
        self._cmd = bytearray(264)
        self._n = 0
        self._deaf = False  # this NSS period is ignored (BUSY was high, or it woke the chip)
        self._deaf_busy = False
        self._tmiso = bytearray()
        self._warm = True
        self._continuous = False
        self._busy_until = None
        self._in_reset = False
        self.mode = _ST_RC
        self.cmd_status = _CS_OK
        self.errors = 0
        self._cold()
        self.set_state("stdby_rc")

    def _cold(self):
        # power-up / reset / cold wake: every setting back to its reset value
        self.regs = dict(_REGS)
        self.packet_type = 0  # GFSK
        self.freq_hz = 915000000
        self.sf, self.bw_code, self.cr, self.ldro = 7, 0x04, 1, 0
        self.preamble, self.implicit, self.pl, self.crc, self.iq = 12, 0, 0xFF, 1, 0
        self.power, self.ramp = 14, 0x02
        self.pa = (0x04, 0x07, 0x00, 0x01)
        self.irq_mask = self.dio1_mask = self.dio2_mask = self.dio3_mask = 0
        self.irq = 0
        self.tx_base = self.rx_base = 0
        self.rx_len = self.rx_start = 0
        self.rssi_pkt = self.snr_pkt = self.sig_rssi_pkt = 0
        self.tcxo = None
        self.dio2_rf_sw = False
        self._timers = {}
        self.stop_listening()
        self._dio()

    # --- pins -----------------------------------------------------------------------

    def line_in(self, name, level):
        if name == "NSS":
            if not level:
                self._n = 0
                self._deaf = False
                self._tmiso = bytearray()
                self.poll()
                if self._in_reset:
                    self._deaf = True
                elif self.mode == _ST_SLEEP:
                    self._wake()
                    self._deaf = True  # this falling edge only wakes the chip
                elif self.lines["BUSY"].level:
                    self._deaf = True
                    self._deaf_busy = True
            else:
                self._end()
        elif name == "NRESET":
            if not level:
                self._in_reset = True
                self.set_state("off")
                self._busy(None)
            else:
                self._in_reset = False
                self._cold()
                self.mode = _ST_RC
                self.set_state("stdby_rc")
                self._busy(_CALIB_US)

    def line_level(self, name):
        return self.lines[name].level

    def _busy(self, chip_us):
        # BUSY high for chip_us (None: until something else lowers it)
        self.lines["BUSY"].edge(1)
        if chip_us is None:
            self.cancel("busy")
        else:
            self.at("busy", chip_us)

    def _dio(self):
        self.lines["DIO1"].edge(1 if self.irq & self.dio1_mask else 0)

    def rx_done(self):
        # RxDone raised and not cleared yet: a packet waits for the driver to read it
        return bool(self.irq & _IRQ_RX_DONE)

    def _raise(self, bits):
        self.irq |= bits & self.irq_mask
        self._dio()

    def status(self):
        return (self.mode << 4) | (self.cmd_status << 1)

    # --- SPI --------------------------------------------------------------------------

    def spi(self, out, into):
        n = len(out)
        if self.lines["NSS"].level:
            self.bad("SPI clocked while NSS is high: the chip ignores it")
            if into is not None:
                for i in range(n):
                    into[i] = 0xFF
            return
        for i in range(n):
            b = out[i]
            pos = self._n
            if pos < len(self._cmd):
                self._cmd[pos] = b
            self._n = pos + 1
            if self._deaf:
                r = 0xFF if self._in_reset else 0
            else:
                r = self._miso(pos)
            if into is not None:
                into[i] = r
            if self.trace is not None:
                self._tmiso.append(r)

    def _miso(self, pos):
        op = self._cmd[0]
        st = self.status()
        if pos == 0:
            return st
        if op == 0x1D:  # ReadRegister: addr(2), NOP, data...
            if pos >= 4:
                addr = (self._cmd[1] << 8 | self._cmd[2]) + pos - 4
                return self._reg_read(addr)
            return st
        if op == 0x1E:  # ReadBuffer: offset, NOP, data...
            if pos >= 3:
                return self.buf[(self._cmd[1] + pos - 3) & 0xFF]
            return st
        if pos == 1:
            return st
        if op == 0x12:
            return (self.irq >> 8) & 0xFF if pos == 2 else self.irq & 0xFF if pos == 3 else 0
        if op == 0x13:
            return self.rx_len if pos == 2 else self.rx_start if pos == 3 else 0
        if op == 0x14:
            return (self.rssi_pkt, self.snr_pkt, self.sig_rssi_pkt, 0)[min(pos - 2, 3)]
        if op == 0x15:
            return self._rssi_inst() if pos == 2 else 0
        if op == 0x17:
            return (self.errors >> 8) & 0xFF if pos == 2 else self.errors & 0xFF if pos == 3 else 0
        if op == 0x11:
            return self.packet_type if pos == 2 else 0
        return 0

    def _reg_read(self, addr):
        if addr not in self.regs:
            self.bad("ReadRegister 0x%04x: not in the datasheet's register map" % addr)
            return 0
        return self.regs[addr]

    def _end(self):
        # NSS rising: the command in _cmd[:_n] takes effect
        n = min(self._n, len(self._cmd))
        self._n = 0
        if self._deaf:
            if n and self._deaf_busy:
                self.bad("command 0x%02x sent while BUSY was high: ignored (DS 8.3.1)" % self._cmd[0])
            self._deaf_busy = False
            return
        if n == 0:
            return
        self.transactions += 1
        if self.trace is not None:
            self.trace.append((bytes(self._cmd[:n]), bytes(self._tmiso)))
        op = self._cmd[0]
        spec = _CMDS.get(op)
        if spec is None:
            self.bad("opcode 0x%02x is not a command (DS 13): processing error" % op)
            self.cmd_status = _CS_ERROR
            self._busy(_BUSY_US)
            return
        name, want = spec
        args = bytes(self._cmd[1:n])
        if want is not None and len(args) < want:
            self.bad("%s with %d parameter bytes, needs %d: processing error" % (name, len(args), want))
            self.cmd_status = _CS_ERROR
            self._busy(_BUSY_US)
            return
        self.cmd_status = _CS_OK
        busy = _BUSY_US
        fn = getattr(self, "_c_" + name, None)
        if fn is not None:
            r = fn(args)
            if r is not None:
                busy = r
        elif op in (0xC5, 0xD1, 0xD2, 0x94):
            self.bad("%s: not emulated" % name)
        if busy is not False:
            self._busy(busy)

    def _refuse(self, msg, status=_CS_ERROR):
        self.bad(msg)
        self.cmd_status = status

    def _standby_only(self, name):
        if self.mode not in (_ST_RC, _ST_XOSC):
            self._refuse("%s in %s mode: only accepted in STDBY (DS 13.1): failure to execute"
                         % (name, _STATES[self.mode]), _CS_FAIL)
            return False
        return True

    def _go(self, mode):
        if self.mode == _ST_TX and mode != _ST_TX:
            self.cancel("txdone")
            self.cancel("txtimeout")
        if self.mode == _ST_RX and mode != _ST_RX:
            self.cancel("rxtimeout")
            self.stop_listening()
        self.mode = mode
        self.set_state(_STATES[mode])

    # --- commands ---------------------------------------------------------------------

    def _c_SetStandby(self, a):
        if a[0] > 1:
            self._refuse("SetStandby(%d): StdbyConfig is 0 (RC) or 1 (XOSC)" % a[0])
            return None
        self._go(_ST_XOSC if a[0] else _ST_RC)
        return None

    def _c_SetSleep(self, a):
        if not self._standby_only("SetSleep"):
            return None
        self._warm = bool(a[0] & 0x04)
        self._go(_ST_SLEEP)
        for i in range(256):
            self.buf[i] = 0  # the data buffer is not retained in Sleep
        self._busy(None)
        return False  # BUSY stays high while asleep

    def _wake(self):
        warm = self._warm
        if not warm:
            self._cold()
        self.mode = _ST_RC
        self.set_state("stdby_rc")
        self._busy(_WARM_WAKE_US if warm else _CALIB_US)

    def _c_SetFs(self, a):
        self._go(_ST_FS)
        return _BUSY_MODE_US

    def _lora_only(self, name):
        if self.packet_type != 1:
            self._refuse("%s with packet type %d: only LoRa (1) is emulated" % (name, self.packet_type))
            return False
        return True

    def _check_modulation(self):
        bw = _BW.get(self.bw_code, 125000)
        tsym = (1 << self.sf) * 1000000 // bw
        if (tsym >= 16000) != bool(self.ldro):
            self.bad("LowDataRateOptimize %d with %d us symbols: it must be on exactly when a symbol lasts "
                     "16 ms or more (DS 6.1.1.4)" % (self.ldro, tsym))
        if self.iq and self.regs[0x0736] & 0x04:
            self.bad("inverted IQ with bit 2 of register 0x0736 set: the DS 15.4 workaround is missing, "
                     "reception degrades")

    def _c_SetTx(self, a):
        if self.mode not in (_ST_RC, _ST_XOSC, _ST_FS):
            self._refuse("SetTx in %s mode: failure to execute" % _STATES[self.mode], _CS_FAIL)
            return None
        if not self._lora_only("SetTx"):
            return None
        if self.pl == 0:
            self._refuse("SetTx with PayloadLength 0 (SetPacketParams): nothing to send", _CS_FAIL)
            return None
        self._check_modulation()
        payload = bytearray(self.pl)
        for i in range(self.pl):
            payload[i] = self.buf[(self.tx_base + i) & 0xFF]
        bw = _BW[self.bw_code]
        toa = toa_us(symbols_x4(self.pl, self.sf, self.cr + 4, self.preamble, not self.implicit, self.crc,
                                self.ldro, True), self.sf, bw)
        self._go(_ST_TX)
        self.transmit(self._phy(1), payload, toa)
        timeout = (a[0] << 16) | (a[1] << 8) | a[2]
        if timeout:
            self.at("txtimeout", int(timeout * _STEP_US))
        return _BUSY_MODE_US

    def _c_SetRx(self, a):
        if self.mode not in (_ST_RC, _ST_XOSC, _ST_FS, _ST_RX):
            self._refuse("SetRx in %s mode: failure to execute" % _STATES[self.mode], _CS_FAIL)
            return None
        if not self._lora_only("SetRx"):
            return None
        self._check_modulation()
        self._go(_ST_RX)
        timeout = (a[0] << 16) | (a[1] << 8) | a[2]
        self._continuous = timeout == 0xFFFFFF
        if timeout and not self._continuous:
            self.at("rxtimeout", int(timeout * _STEP_US))
        self.start_listening()
        return _BUSY_MODE_US

    def _c_Calibrate(self, a):
        if self.mode != _ST_RC:
            self._refuse("Calibrate outside STDBY_RC: failure to execute (DS 13.1.12)", _CS_FAIL)
            return None
        return _CALIB_US

    def _c_CalibrateImage(self, a):
        if not self._standby_only("CalibrateImage"):
            return None
        return _CALIB_US

    def _c_SetPaConfig(self, a):
        duty, hp_max, dev, lut = a[0], a[1], a[2], a[3]
        if dev != 0:
            self.bad("SetPaConfig deviceSel %d: 0 selects the SX1262's high-power PA" % dev)
        if lut != 1:
            self.bad("SetPaConfig paLut %d: must be 1" % lut)
        if duty > 4 or hp_max > 7:
            self.bad("SetPaConfig paDutyCycle %d / hpMax %d above 4 / 7: may damage the chip (DS 13.1.14)"
                     % (duty, hp_max))
        self.pa = (duty, hp_max, dev, lut)
        self.regs[0x08E7] = 0x38  # OCP 140 mA, set by SetPaConfig for the SX1262
        return None

    def _c_WriteRegister(self, a):
        if len(a) < 3:
            self._refuse("WriteRegister without address and data")
            return None
        addr = (a[0] << 8) | a[1]
        for i in range(2, len(a)):
            r = addr + i - 2
            if r not in self.regs:
                self.bad("WriteRegister 0x%04x: not in the datasheet's register map" % r)
            self.regs[r] = a[i]
        return None

    def _c_ReadRegister(self, a):
        if len(a) < 3:
            self._refuse("ReadRegister without address and NOP")
        return None

    def _c_WriteBuffer(self, a):
        if len(a) < 1:
            self._refuse("WriteBuffer without offset")
            return None
        off = a[0]
        for i in range(1, len(a)):
            self.buf[(off + i - 1) & 0xFF] = a[i]
        return None

    def _c_SetDioIrqParams(self, a):
        self.irq_mask = (a[0] << 8) | a[1]
        self.dio1_mask = (a[2] << 8) | a[3]
        self.dio2_mask = (a[4] << 8) | a[5]
        self.dio3_mask = (a[6] << 8) | a[7]
        if (self.dio1_mask | self.dio2_mask | self.dio3_mask) & ~self.irq_mask:
            self.bad("SetDioIrqParams maps IRQs to DIOs that IrqMask disables: they never show")
        self._dio()
        return None

    def _c_ClearIrqStatus(self, a):
        self.irq &= ~((a[0] << 8) | a[1])
        self._dio()
        return None

    def _c_SetDIO2AsRfSwitchCtrl(self, a):
        self.dio2_rf_sw = bool(a[0] & 1)
        return None

    def _c_SetDIO3AsTcxoCtrl(self, a):
        if self.mode != _ST_RC:
            self._refuse("SetDIO3AsTcxoCtrl outside STDBY_RC: failure to execute (DS 13.3.6)", _CS_FAIL)
            return None
        if a[0] > 7:
            self._refuse("SetDIO3AsTcxoCtrl voltage code %d: 0..7" % a[0])
            return None
        self.tcxo = (a[0], (a[1] << 16) | (a[2] << 8) | a[3])
        self.errors |= _XOSC_START_ERR  # the XOSC found no clock before the TCXO was powered (DS 13.3.6)
        return None

    def _c_SetRfFrequency(self, a):
        rf = (a[0] << 24) | (a[1] << 16) | (a[2] << 8) | a[3]
        hz = rf * 15625 // 16384  # RFfreq * 32 MHz / 2^25 (DS 13.4.1)
        if not 150000000 <= hz <= 960000000:
            self.bad("SetRfFrequency %d Hz outside 150..960 MHz" % hz)
        self.freq_hz = hz
        return None

    def _c_SetPacketType(self, a):
        if not self._standby_only("SetPacketType"):
            return None
        if a[0] > 1:
            self._refuse("SetPacketType %d: 0 GFSK or 1 LoRa" % a[0])
            return None
        self.packet_type = a[0]
        return None

    def _c_SetTxParams(self, a):
        p = a[0] - 256 if a[0] > 127 else a[0]
        if not -9 <= p <= 22:
            self.bad("SetTxParams power %d dBm outside -9..+22 (high-power PA)" % p)
        if a[1] > 7:
            self.bad("SetTxParams RampTime code %d: 0..7" % a[1])
        self.power, self.ramp = p, a[1]
        return None

    def _c_SetModulationParams(self, a):
        if not self._lora_only("SetModulationParams"):
            return None
        sf, bw, cr, ldro = a[0], a[1], a[2], a[3]
        if not 5 <= sf <= 12 or bw not in _BW or not 1 <= cr <= 4 or ldro > 1:
            self._refuse("SetModulationParams SF %d, BW code 0x%02x, CR code %d, LDRO %d: outside the "
                         "datasheet's values (DS 13.4.5)" % (sf, bw, cr, ldro))
            return None
        self.sf, self.bw_code, self.cr, self.ldro = sf, bw, cr, ldro
        return None

    def _c_SetPacketParams(self, a):
        if not self._lora_only("SetPacketParams"):
            return None
        header, crc, iq = a[2], a[4], a[5]
        if header > 1 or crc > 1 or iq > 1:
            self._refuse("SetPacketParams header %d, CRC %d, InvertIQ %d: each is 0 or 1" % (header, crc, iq))
            return None
        self.preamble = (a[0] << 8) | a[1]
        self.implicit, self.pl, self.crc, self.iq = header, a[3], crc, iq
        return None

    def _c_SetBufferBaseAddress(self, a):
        self.tx_base, self.rx_base = a[0], a[1]
        return None

    def _c_ClearDeviceErrors(self, a):
        self.errors = 0
        return None

    def _c_SetRxTxFallbackMode(self, a):
        if a[0] != 0x20:
            self.bad("SetRxTxFallbackMode 0x%02x: only STDBY_RC (0x20) is emulated" % a[0])
        return None

    # --- air --------------------------------------------------------------------------

    def _power(self):
        duty, hp_max = self.pa[0], self.pa[1]
        top = _PA_OPTIMAL.get((duty, hp_max), 22)
        if self.power >= 22:
            return top
        return min(self.power, top)

    def _sync_byte(self):
        # 0xY4Z4 (the SX126x form of SX127x sync word 0xYZ) -> 0xYZ
        v = (self.regs[0x0740] << 8) | self.regs[0x0741]
        return ((v >> 8) & 0xF0) | ((v >> 4) & 0x0F)

    def _phy(self, tx):
        flags = (2 if self.crc else 0) | (4 if self.implicit else 0) | (8 if self.ldro else 0) | (1 if self.iq else 0)
        return (self.freq_hz, _BW[self.bw_code], self.sf, self.cr + 4, self._sync_byte(), flags, self.preamble,
                self._power())

    def rx_params(self):
        if self.mode != _ST_RX:
            return None
        return self._phy(0)

    def on_detect(self, p):
        self.cancel("rxtimeout")  # the timer stops on header detection (StopTimerOnPreamble 0)
        self._raise(_IRQ_PREAMBLE | (0 if self.implicit else _IRQ_HEADER_VALID))

    def on_rx_done(self, p):
        h = p.hdr
        n = len(p.payload)
        corrupt = p.corrupt
        if self.implicit or h[5] & 4:
            if not (self.implicit and h[5] & 4 and n == self.pl and self.cr + 4 == h[3]
                    and bool(self.crc) == bool(h[5] & 2)):
                corrupt = True
        if bool(self.ldro) != bool(h[5] & 8):
            corrupt = True
        crc_on = self.crc if self.implicit else h[5] & 2
        data = bytearray(p.payload)
        if corrupt and not crc_on and n:
            data[n // 2] ^= 0x5A
        for i in range(n):
            self.buf[(self.rx_base + i) & 0xFF] = data[i]
        self.rx_len = n
        self.rx_start = self.rx_base
        self.rssi_pkt = min(255, max(0, -2 * p.rssi))
        self.snr_pkt = int(round(p.snr * 4)) & 0xFF
        self.sig_rssi_pkt = min(255, max(0, -2 * (p.rssi - int(min(p.snr, 0)))))
        bits = _IRQ_RX_DONE
        if corrupt and crc_on:
            bits |= _IRQ_CRC_ERR
        if not self._continuous:
            self._go(_ST_RC)
        self.cmd_status = _CS_DATA
        self._raise(bits)

    def _rssi_inst(self):
        dbm = self.rx_pkt.rssi if self.rx_pkt is not None else -120
        return min(255, max(0, -2 * dbm))

    def on_timer(self, name):
        if name == "busy":
            self.lines["BUSY"].edge(0)
        elif name == "txdone":
            self.cancel("txtimeout")
            self._go(_ST_RC)
            self.cmd_status = _CS_TX_DONE
            self._raise(_IRQ_TX_DONE)
        elif name == "txtimeout":
            self.cancel("txdone")
            self._go(_ST_RC)
            self._raise(_IRQ_TIMEOUT)
        elif name == "rxtimeout":
            self._go(_ST_RC)
            self._raise(_IRQ_TIMEOUT)
