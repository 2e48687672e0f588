# An emulated Semtech SX1276 (unix port only), the LoRa modem of the SX1276/77/
# 78/79 datasheet (rev 7, "DS" below), as micropython-lib's lora-sx127x driver
# and any other driver see it over SPI:
#   - SPI (DS 2.2 / 4.3): the first byte of a transaction is wnr|address, then
#     data bytes with the address auto-incremented (burst), except the FIFO
#     (address 0), which moves RegFifoAddrPtr instead;
#   - the register map with its reset values (DS 6.1/6.4), read-only
#     registers, RegIrqFlags cleared by writing 1s, the FSK page at 0x0D..0x3F
#     when LongRangeMode is 0 (only RegImageCal there is modelled);
#   - RegOpMode: Sleep, Standby, FSTX/FSRX, TX, RXCONTINUOUS, RXSINGLE (DS 4.1.3);
#     LongRangeMode changes only in Sleep; the FIFO is off and cleared in Sleep;
#   - TX sends RegPayloadLength bytes from RegFifoTxBaseAddr, TxDone after the
#     time on air, then Standby (DS 4.1.6); RXSINGLE times out after
#     SymbTimeout symbols unless a packet is being received, RXCONTINUOUS
#     stays (DS 4.1.6.3); packets go to the FIFO at RegFifoRxBaseAddr;
#   - RegIrqFlags/RegIrqFlagsMask, DIO0 (RxDone/TxDone/CadDone) and DIO1
#     (RxTimeout/FhssChangeChannel/CadDetected) by RegDioMapping1 (DS table 18);
#   - RegPktSnrValue, RegPktRssiValue (-157 + value on the HF port, -164 on LF:
#     DS 5.5.5, the rev 4 form without the 16/15 factor), RegRssiValue, RegModemStat;
#   - output power from RegPaConfig/RegPaDac (DS 5.4.2/5.4.3); on a board whose
#     antenna is on PA_BOOST only (Heltec V2, RFM95W) a transmission on RFO is
#     logged and goes out 40 dB down (the RFO pin is not connected);
#   - NRESET low holds the chip in reset; it is usable 5 ms after (DS 7.2.2).
# Invalid use that the chip would ignore or that breaks the link is logged
# (Chip.bad). CAD and the FSK/OOK modem are not emulated (logged when asked for).
from fp.hal.emu.bus import Line
from fp.hal.emu.chip import Chip, symbols_x4, toa_us
from micropython import const

_FIFO = const(0x00)
_OPMODE = const(0x01)
_FRF_MSB = const(0x06)
_PA_CONFIG = const(0x09)
_FIFO_ADDR_PTR = const(0x0D)
_FIFO_TX_BASE = const(0x0E)
_FIFO_RX_BASE = const(0x0F)
_FIFO_RX_CURRENT = const(0x10)
_IRQ_MASK = const(0x11)
_IRQ_FLAGS = const(0x12)
_RX_NB_BYTES = const(0x13)
_MODEM_STAT = const(0x18)
_PKT_SNR = const(0x19)
_PKT_RSSI = const(0x1A)
_RSSI = const(0x1B)
_HOP_CHANNEL = const(0x1C)
_MODEM_CONFIG1 = const(0x1D)
_MODEM_CONFIG2 = const(0x1E)
_SYMB_TIMEOUT_LSB = const(0x1F)
_PREAMBLE_MSB = const(0x20)
_PAYLOAD_LEN = const(0x22)
_MAX_PAYLOAD_LEN = const(0x23)
_FIFO_RX_BYTE_ADDR = const(0x25)
_MODEM_CONFIG3 = const(0x26)
_INVERT_IQ = const(0x33)
_SYNC_WORD = const(0x39)
_INVERT_IQ2 = const(0x3B)
_IMAGE_CAL = const(0x3B)  # FSK page
_DIO_MAPPING1 = const(0x40)
_PA_DAC = const(0x4D)

_SLEEP = const(0)
_STDBY = const(1)
_FSTX = const(2)
_TX = const(3)
_FSRX = const(4)
_RXCONT = const(5)
_RXSINGLE = const(6)
_CAD = const(7)

_IRQ_RX_TIMEOUT = const(0x80)
_IRQ_RX_DONE = const(0x40)
_IRQ_CRC_ERROR = const(0x20)
_IRQ_VALID_HEADER = const(0x10)
_IRQ_TX_DONE = const(0x08)
_IRQ_CAD_DONE = const(0x04)
_IRQ_FHSS = const(0x02)
_IRQ_CAD_DETECTED = const(0x01)

_RESET_US = const(4000)  # NRESET high to ready: the host waits 5 ms (DS 7.2.2), the chip is ready within it
_IMAGE_CAL_US = const(10000)
_NOISE_DBM = const(-120)

# Reset values of the common registers and the LoRa page (DS table 41/ section 6.4).
# RegInvertIQ reads 0x27 in LoRa mode (see the comment in lora/sx127x.py).
_POR = (
    (0x01, 0x09), (0x06, 0x6C), (0x07, 0x80), (0x08, 0x00), (0x09, 0x4F), (0x0A, 0x09), (0x0B, 0x2B),
    (0x0C, 0x20), (0x0E, 0x80), (0x18, 0x10), (0x1D, 0x72), (0x1E, 0x70), (0x1F, 0x64), (0x21, 0x08),
    (0x22, 0x01), (0x23, 0xFF), (0x26, 0x04), (0x31, 0xC3), (0x33, 0x27), (0x36, 0x03), (0x37, 0x0A),
    (0x39, 0x12), (0x3A, 0x52), (0x3B, 0x1D), (0x42, 0x12), (0x44, 0x2D), (0x4B, 0x09), (0x4D, 0x84),
    (0x61, 0x13), (0x62, 0x0E), (0x63, 0x5B), (0x64, 0xDB), (0x70, 0xD0),
)
_FSK_POR = ((0x3B, 0x82),)  # RegImageCal: AutoImageCalOn
# LoRa-mode registers the host may write, and the read-only ones
_KNOWN = bytes((0x00, 0x01, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x11, 0x12, 0x1D,
                0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x26, 0x27, 0x2F, 0x30, 0x31, 0x33, 0x36, 0x37,
                0x39, 0x3A, 0x3B, 0x40, 0x41, 0x44, 0x4B, 0x4D, 0x5D, 0x61, 0x62, 0x63, 0x64, 0x70))
_READ_ONLY = bytes((0x10, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x25, 0x28, 0x29, 0x2A,
                    0x2C, 0x42, 0x5B))
_MODEM_REGS = bytes((0x06, 0x07, 0x08, 0x1D, 0x1E, 0x20, 0x21, 0x22, 0x26, 0x39))
_BW_HZ = (7800, 10400, 15600, 20800, 31250, 41700, 62500, 125000, 250000, 500000)
_NAMES = {0: "sleep", 1: "standby", 2: "fs", 3: "tx", 4: "fs", 5: "rx", 6: "rx", 7: "cad"}


class SX1276(Chip):
    # pa_pin: "PA_BOOST" or "RFO" when the board connects only that PA, else None
    def __init__(self, air, scale=1, pa_pin=None, trace=None, reset_wired=True):
        Chip.__init__(self, "sx1276", air, scale, trace)
        self.pa_pin = pa_pin
        self.lines = {
            "NSS": Line(self, "NSS", False),
            "NRESET": Line(self, "NRESET", False),
            "DIO0": Line(self, "DIO0", True),
            "DIO1": Line(self, "DIO1", True),
        }
        self.lines["NSS"].level = 1
        self.lines["NRESET"].level = 1
        self.reg = bytearray(0x80)
        self.fsk = bytearray(0x40)
        self.fifo = bytearray(256)
        self._addr = None
        self._write = False
        self._in_reset = False
        self._ready = True
        self._mosi = bytearray()
        self._miso = bytearray()
        self._por()

    def _por(self):
        for i in range(len(self.reg)):
            self.reg[i] = 0
        for i in range(len(self.fsk)):
            self.fsk[i] = 0
        for a, v in _POR:
            self.reg[a] = v
        for a, v in _FSK_POR:
            self.fsk[a] = v
        for i in range(256):
            self.fifo[i] = 0
        self._timers = {}
        self.stop_listening()
        self.set_state("standby")
        self._dio()

    # --- pins -----------------------------------------------------------------------

    def line_in(self, name, level):
        if name == "NSS":
            if not level:
                self._addr = None
                if self.trace is not None:
                    self._mosi = bytearray()
                    self._miso = bytearray()
            else:
                self.transactions += 1
                if self.trace is not None and self._mosi:
                    self.trace.append((bytes(self._mosi), bytes(self._miso)))
        elif name == "NRESET":
            if not level:
                self._in_reset = True
                self.set_state("off")
            else:
                self._in_reset = False
                self._ready = False
                self._por()
                self.at("ready", _RESET_US)

    def line_level(self, name):
        return self.lines[name].level

    def _dio(self):
        flags = self.reg[_IRQ_FLAGS]
        m = self.reg[_DIO_MAPPING1]
        dio0 = (_IRQ_RX_DONE, _IRQ_TX_DONE, _IRQ_CAD_DONE, 0)[m >> 6]
        dio1 = (_IRQ_RX_TIMEOUT, _IRQ_FHSS, _IRQ_CAD_DETECTED, 0)[(m >> 4) & 3]
        self.lines["DIO0"].edge(1 if flags & dio0 else 0)
        self.lines["DIO1"].edge(1 if flags & dio1 else 0)

    def rx_done(self):
        # RxDone raised and not cleared yet: a packet waits for the driver to read it
        return bool(self.reg[_IRQ_FLAGS] & _IRQ_RX_DONE)

    def _raise(self, flags):
        self.reg[_IRQ_FLAGS] |= flags & ~self.reg[_IRQ_MASK] & 0xFF
        self._dio()

    # --- SPI --------------------------------------------------------------------------

    def spi(self, out, into):
        n = len(out)
        if self.lines["NSS"].level:
            self.bad("SPI clocked while NSS is high: the chip ignores it")
            if into is not None:
                for i in range(n):
                    into[i] = 0xFF
            return
        if self._in_reset or not self._ready:
            self.poll()
        if self._in_reset or not self._ready:
            self.bad("SPI access %s: ignored" % ("while NRESET is low" if self._in_reset
                                               else "less than 5 ms after reset (DS 7.2.2)"))
            if into is not None:
                for i in range(n):
                    into[i] = 0
            return
        self.poll()
        for i in range(n):
            b = out[i]
            if self._addr is None:
                self._addr = b & 0x7F
                self._write = b & 0x80
                r = 0
            else:
                a = self._addr
                if self._write:
                    self._wr(a, b)
                    r = 0
                else:
                    r = self._rd(a)
                if a != _FIFO:
                    self._addr = (a + 1) & 0x7F
            if into is not None:
                into[i] = r
            if self.trace is not None:
                self._mosi.append(b)
                self._miso.append(r)

    def _lora(self):
        return self.reg[_OPMODE] & 0x80

    def _mode(self):
        return self.reg[_OPMODE] & 7

    def _page(self, a):
        # the register bank an address is in: the FSK page when not in LoRa mode
        return self.fsk if (0x0D <= a <= 0x3F and not self._lora()) else self.reg

    def _rd(self, a):
        if a == _FIFO:
            return self._fifo_access(None)
        if self._lora():
            if a == _MODEM_STAT:
                return self._modem_stat()
            if a == _RSSI:
                return self._rssi_reg(self.rx_pkt.rssi if self.rx_pkt is not None else _NOISE_DBM)
        return self._page(a)[a]

    def _wr(self, a, v):
        if a == _FIFO:
            self._fifo_access(v)
            return
        if a == _OPMODE:
            self._opmode(v)
            return
        if not self._lora() and 0x0D <= a <= 0x3F:
            if a == _IMAGE_CAL:
                self._image_cal(v)
            else:
                self.fsk[a] = v  # FSK/OOK registers: kept, not emulated
            return
        if a in _READ_ONLY:
            self.bad("write 0x%02x to read-only register 0x%02x: ignored" % (v, a))
            return
        if a not in _KNOWN:
            self.bad("write 0x%02x to register 0x%02x, not in the datasheet's LoRa map" % (v, a))
        if a == _IRQ_FLAGS:
            self.reg[a] &= ~v & 0xFF
            self._dio()
            return
        if a in _MODEM_REGS and self._mode() in (_TX, _RXCONT, _RXSINGLE):
            self.bad("register 0x%02x changed while %s: set modem parameters in Sleep or Standby"
                     % (a, _NAMES[self._mode()]))
        if a == _MODEM_CONFIG1 and (v >> 4) > 9:
            self.bad("RegModemConfig1 bandwidth code %d is reserved" % (v >> 4))
        if a == _MODEM_CONFIG1 and ((v >> 1) & 7) not in (1, 2, 3, 4):
            self.bad("RegModemConfig1 coding rate code %d is reserved" % ((v >> 1) & 7))
        if a == _MODEM_CONFIG2 and not 6 <= (v >> 4) <= 12:
            self.bad("RegModemConfig2 SF %d outside 6..12" % (v >> 4))
        self.reg[a] = v
        if a == _DIO_MAPPING1 or a == _IRQ_MASK:
            self._dio()

    def _fifo_access(self, v):
        if not self._lora():
            self.bad("FSK/OOK FIFO access: the FSK modem is not emulated")
            return 0
        if self._mode() == _SLEEP:
            self.bad("FIFO %s in Sleep mode: the FIFO is off" % ("read" if v is None else "write"))
            return 0
        p = self.reg[_FIFO_ADDR_PTR]
        self.reg[_FIFO_ADDR_PTR] = (p + 1) & 0xFF
        if v is None:
            return self.fifo[p]
        self.fifo[p] = v
        return 0

    def _image_cal(self, v):
        running = self.fsk[_IMAGE_CAL] & 0x20  # ImageCalRunning: read-only
        if v & 0x40:
            if self._mode() != _STDBY:
                self.bad("ImageCalStart outside Standby mode: ignored (DS 2.1.3.8)")
            else:
                running = 0x20
                self.at("imagecal", _IMAGE_CAL_US)
        self.fsk[_IMAGE_CAL] = (v & ~0x60) | running  # ImageCalStart reads back 0

    # --- modes ------------------------------------------------------------------------

    def _opmode(self, v):
        old = self.reg[_OPMODE]
        if (v ^ old) & 0x80 and old & 7 != _SLEEP:
            msg = "LongRangeMode changed outside Sleep mode: ignored (DS RegOpMode)"
            if v & 7 == _SLEEP:
                # to Sleep and the other modem in one write (micropython-lib does this): the chip
                # goes to Sleep, keeps its modem, and the next write from Sleep switches it
                self.note(msg)
            else:
                self.bad(msg)
            v = (v & 0x7F) | (old & 0x80)
        self.reg[_OPMODE] = v
        mode = v & 7
        if not v & 0x80 and mode not in (_SLEEP, _STDBY):
            self.bad("FSK/OOK mode %d asked for: the FSK modem is not emulated; stays in Standby" % mode)
            self.reg[_OPMODE] = (v & ~7) | _STDBY
            mode = _STDBY
        if mode == _CAD:
            self.bad("CAD asked for: not emulated; stays in Standby")
            self.reg[_OPMODE] = (v & ~7) | _STDBY
            mode = _STDBY
        old_mode = old & 7
        if mode == old_mode and (v ^ old) & 0x80 == 0:
            return
        if old_mode == _TX and mode != _TX:
            self.cancel("txdone")  # cut short: the packet already left (the air carries whole packets)
        if old_mode in (_RXCONT, _RXSINGLE):
            self.cancel("rxtimeout")
            self.stop_listening()
        if mode == _SLEEP:
            for i in range(256):
                self.fifo[i] = 0
            for a in (0x14, 0x15, 0x16, 0x17):
                self.reg[a] = 0  # header and packet counters reset in Sleep
            self.set_state("sleep")
        elif mode == _STDBY:
            self.set_state("standby")
        elif mode in (_FSTX, _FSRX):
            self.set_state("fs")
        elif mode == _TX:
            self._start_tx()
        else:
            self._start_rx(mode == _RXSINGLE)

    def _standby(self):
        self.reg[_OPMODE] = (self.reg[_OPMODE] & ~7) | _STDBY
        self.set_state("standby")

    def freq_hz(self):
        frf = (self.reg[_FRF_MSB] << 16) | (self.reg[_FRF_MSB + 1] << 8) | self.reg[_FRF_MSB + 2]
        return frf * 15625 // 256  # Frf * 32 MHz / 2^19 (DS 4.1.4)

    def _modem(self):
        # (bw_hz, sf, cr 5..8, implicit, crc, ldro, preamble)
        m1 = self.reg[_MODEM_CONFIG1]
        m2 = self.reg[_MODEM_CONFIG2]
        bw = _BW_HZ[min(m1 >> 4, 9)]
        cr = ((m1 >> 1) & 7) + 4
        sf = m2 >> 4
        pre = (self.reg[_PREAMBLE_MSB] << 8) | self.reg[_PREAMBLE_MSB + 1]
        return bw, sf, cr, m1 & 1, (m2 >> 2) & 1, (self.reg[_MODEM_CONFIG3] >> 3) & 1, pre

    def _iq(self, tx):
        # RegInvertIQ (TX bit 0 is 1 for normal, RX bit 6 is 1 for inverted) and
        # RegInvertIQ2 (0x19 inverted, 0x1D normal) must agree (AN1200.24, the driver's note)
        inv = (self.reg[_INVERT_IQ] & 1) == 0 if tx else (self.reg[_INVERT_IQ] & 0x40) != 0
        iq2 = self.reg[_INVERT_IQ2]
        if iq2 not in (0x19, 0x1D) or (iq2 == 0x19) != inv:
            self.bad("RegInvertIQ and RegInvertIQ2 (0x%02x) disagree for %s: IQ half inverted, nobody hears it"
                     % (iq2, "TX" if tx else "RX"))
            return 2
        return 1 if inv else 0

    def _phy(self, tx):
        bw, sf, cr, implicit, crc, ldro, pre = self._modem()
        iq = self._iq(tx)
        flags = (2 if crc else 0) | (4 if implicit else 0) | (8 if ldro else 0) | (1 if iq == 1 else 0)
        sync = self.reg[_SYNC_WORD] if iq != 2 else self.reg[_SYNC_WORD] ^ 0xFF
        return (self.freq_hz(), bw, sf, cr, sync, flags, pre, self._pout())

    def rx_params(self):
        if self._mode() not in (_RXCONT, _RXSINGLE) or not self._lora():
            return None
        return self._phy(False)

    def _check_modem(self, sf, bw, implicit, ldro, cr):
        if sf == 6 and not implicit:
            self.bad("SF6 in explicit header mode: SF6 needs implicit header mode (DS 4.1.1.2)")
        if cr < 5 or cr > 8:
            self.bad("coding rate code %d is reserved" % (cr - 4))
        if ((1 << sf) * 1000000 // bw >= 16000) != bool(ldro):
            self.bad("LowDataRateOptimize %s with %d us symbols: it must be on exactly when a symbol "
                     "lasts 16 ms or more (DS 4.1.1.6)" % ("on" if ldro else "off", (1 << sf) * 1000000 // bw))
        if bw >= 250000 and self.freq_hz() < 525000000:
            self.bad("%d kHz bandwidth in the low band: not supported (DS 4.1.1.4)" % (bw // 1000))

    def _pout(self):
        pa = self.reg[_PA_CONFIG]
        op = pa & 0x0F
        if pa & 0x80:  # PA_BOOST
            p = (20 if self.reg[_PA_DAC] & 7 == 7 else 17) - (15 - op)
            if self.pa_pin == "RFO":
                p -= 40
        else:
            p = int(10.8 + 0.6 * ((pa >> 4) & 7) - (15 - op))
            if self.pa_pin == "PA_BOOST":
                p -= 40
        return p

    def _start_tx(self):
        if not self._lora():
            return
        n = self.reg[_PAYLOAD_LEN]
        if n == 0:
            self.bad("TX with RegPayloadLength 0: nothing sent")
            self._standby()
            return
        bw, sf, cr, implicit, crc, ldro, pre = self._modem()
        self._check_modem(sf, bw, implicit, ldro, cr)
        pa = self.reg[_PA_CONFIG]
        if (pa & 0x80 == 0) and self.pa_pin == "PA_BOOST":
            self.bad("transmitting on RFO, which this board does not connect (antenna on PA_BOOST): "
                     "40 dB down")
        elif (pa & 0x80) and self.pa_pin == "RFO":
            self.bad("transmitting on PA_BOOST, which this board does not connect: 40 dB down")
        if self.reg[_PA_DAC] & 7 == 7 and not pa & 0x80:
            self.bad("RegPaDac 0x87 (+20 dBm) with RFO selected: only PA_BOOST has the +20 dBm mode")
        base = self.reg[_FIFO_TX_BASE]
        payload = bytearray(n)
        for i in range(n):
            payload[i] = self.fifo[(base + i) & 0xFF]
        toa = toa_us(symbols_x4(n, sf, cr, pre, not implicit, crc, ldro, False), sf, bw)
        self.set_state("tx")
        self.transmit(self._phy(True), payload, toa)

    def _start_rx(self, single):
        if not self._lora():
            return
        bw, sf, cr, implicit, crc, ldro, pre = self._modem()
        self._check_modem(sf, bw, implicit, ldro, cr)
        self.set_state("rx")
        self.reg[_FIFO_RX_BYTE_ADDR] = self.reg[_FIFO_RX_BASE]
        if single:
            symbs = ((self.reg[_MODEM_CONFIG2] & 3) << 8) | self.reg[_SYMB_TIMEOUT_LSB]
            if symbs < 4:
                self.bad("RX symbol timeout %d: below 4 symbols the preamble cannot be found" % symbs)
            self.at("rxtimeout", symbs * (1 << sf) * 1000000 // bw)
        self.start_listening()

    # --- events ---------------------------------------------------------------------------

    def on_detect(self, p):
        self.cancel("rxtimeout")  # no RxTimeout while a packet is being received (DS 4.1.6.3)

    def on_rx_done(self, p):
        h = p.hdr
        n = len(p.payload)
        bw, sf, cr, implicit, crc, ldro, pre = self._modem()
        tx_implicit = h[5] & 4
        corrupt = p.corrupt
        if implicit or tx_implicit:
            # no header: the receiver must already know length, coding rate and CRC
            if not (implicit and tx_implicit and n == self.reg[_PAYLOAD_LEN] and cr == h[3]
                    and bool(crc) == bool(h[5] & 2)):
                corrupt = True
        if bool(ldro) != bool(h[5] & 8):
            corrupt = True
        crc_on = crc if implicit else h[5] & 2
        data = bytearray(p.payload)
        if corrupt and not crc_on and n:
            data[n // 2] ^= 0x5A  # no CRC to notice: a damaged byte goes up
        wp = self.reg[_FIFO_RX_BYTE_ADDR]
        for i in range(n):
            self.fifo[(wp + i) & 0xFF] = data[i]
        self.reg[_FIFO_RX_CURRENT] = wp
        self.reg[_FIFO_RX_BYTE_ADDR] = (wp + n) & 0xFF
        self.reg[_RX_NB_BYTES] = n
        snr4 = int(round(p.snr * 4))
        self.reg[_PKT_SNR] = snr4 & 0xFF
        self.reg[_PKT_RSSI] = self._rssi_reg(p.rssi - (snr4 // 4 if snr4 < 0 else 0))
        self.reg[_HOP_CHANNEL] = (self.reg[_HOP_CHANNEL] & ~0x40) | (0x40 if h[5] & 2 else 0)
        self.reg[_MODEM_STAT] = (self.reg[_MODEM_STAT] & 0x1F) | ((h[3] - 4) << 5)
        self._count(0x14)
        if not corrupt:
            self._count(0x16)
        flags = _IRQ_RX_DONE | (0 if implicit else _IRQ_VALID_HEADER)
        if corrupt and crc_on:
            flags |= _IRQ_CRC_ERROR
        if self._mode() == _RXSINGLE:
            self._standby()
            self._rx_since = None
        self._raise(flags)

    def _count(self, msb):
        v = ((self.reg[msb] << 8) | self.reg[msb + 1]) + 1
        self.reg[msb] = (v >> 8) & 0xFF
        self.reg[msb + 1] = v & 0xFF

    def on_timer(self, name):
        if name == "txdone":
            self._standby()
            self._raise(_IRQ_TX_DONE)
        elif name == "rxtimeout":
            self.stop_listening()
            self._standby()
            self._raise(_IRQ_RX_TIMEOUT)
        elif name == "ready":
            self._ready = True
        elif name == "imagecal":
            self.fsk[_IMAGE_CAL] &= ~0x20

    def _rssi_reg(self, dbm):
        v = dbm + (157 if self.freq_hz() >= 779000000 else 164)
        return min(max(v, 0), 255)

    def _modem_stat(self):
        v = self.reg[_MODEM_STAT] & 0xE0
        if self.rx_pkt is not None:
            return v | 0x0F  # signal detected, synchronised, RX on-going, header valid
        return v | 0x10  # modem clear
