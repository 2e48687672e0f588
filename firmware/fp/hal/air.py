# The old loopback air modem of virtual modules, with the interface of
# micropython-lib's lora AsyncModem (send / recv / get_time_on_air_us /
# standby / sleep). Virtual modules now run the real lora driver over an
# emulated chip (fp/hal/emu/), chosen by the board profile; this modem stays
# for a board profile whose radio chip is "udp-air" (hardware/boards/unix_air.json),
# where a test wants the radio without a driver (a baseline in the benchmarks).
# It speaks the same air as the emulated chips (fp/hal/airwire.py), so both
# kinds of module hear each other: its datagram leaves when the transmission
# starts, and a packet that starts while it listens is handed over when it
# ends (one time on air later), even if the receive timeout passed meanwhile:
# a receive window only has to be open when a packet starts, as on a radio.
#
# config.json "air": {"port": own UDP port (0: any), "peers": [ports to send to],
#                     "loss": 0..1 (drop probability of each received packet),
#                     "rssi": dBm, "snr": dB (reported for received packets), "seed": int}
# A transmission takes its LoRa time on air (scaled with the clock); a receiver
# hears only packets of its own SF/BW/frequency/sync word, only while
# listening (not while sending or in standby): half duplex, as on a real radio.
import asyncio
from time import ticks_ms

from fp.airtime import time_on_air_us
from fp.hal import airwire


class RxPacket(bytearray):
    # Same attributes as micropython-lib's lora.RxPacket
    def __init__(self, data):
        super().__init__(data)
        self.ticks_ms = ticks_ms()
        self.rssi = 0
        self.snr = 0  # quarter dB
        self.crc_error = False


class AirModem:
    def __init__(self, clock, lora_cfg, port=0, peers=(), loss=0.0, rssi=-90, snr=7.5, seed=None):
        self.clock = clock
        self.lora_cfg = {}
        self.air = airwire.Air(port, peers, loss, rssi, snr, seed)
        self.sock = self.air.sock
        self.counters = self.air.counters
        self.configure(lora_cfg)
        self.listening = False

    def configure(self, lora_cfg):
        self.lora_cfg.update(lora_cfg)
        c = self.lora_cfg
        bw_hz = int(float(c.get("bw", 125)) * 1000)
        self._sf = c.get("sf", 12)
        flags = airwire.F_CRC if c.get("crc_en", True) else 0
        if c.get("implicit_header", False):
            flags |= airwire.F_IMPLICIT
        if (1 << self._sf) * 1000000 // bw_hz >= 16000:
            flags |= airwire.F_LDRO
        flags_rx = flags | (airwire.F_IQ_INV if c.get("invert_iq_rx") else 0)
        flags_tx = flags | (airwire.F_IQ_INV if c.get("invert_iq_tx") else 0)
        args = (int(c.get("freq_khz", 868100) * 1000), bw_hz, self._sf, c.get("coding_rate", 5),
                c.get("syncword", 0x12))
        self._rx = args + (flags_rx, c.get("preamble_len", 12), c.get("output_power", 14), 0)
        self._tx = args + (flags_tx, c.get("preamble_len", 12), c.get("output_power", 14))

    def get_time_on_air_us(self, payload_len):
        c = self.lora_cfg
        return time_on_air_us(payload_len, c.get("sf", 12), int(float(c.get("bw", 125))), c.get("coding_rate", 5),
                              c.get("preamble_len", 12), not c.get("implicit_header", False),
                              c.get("crc_en", True))

    def _drain(self):
        # Whatever arrived while we were deaf is gone, as on the air.
        while self.air.take() is not None:
            self.counters["missed"] += 1

    def standby(self):
        self.listening = False

    def sleep(self):
        self.listening = False

    async def send(self, packet, tx_at_ms=None):
        self.listening = False
        toa = self.get_time_on_air_us(len(packet))
        scale = getattr(self.clock, "scale", 1) or 1
        self.air.send(airwire.header(*(self._tx + (int(toa / scale),))), packet)
        await self.clock.sleep_ms(toa // 1000)
        self._drain()
        return ticks_ms()

    def _take(self):
        # One received packet, or None when nothing (more) is waiting.
        while True:
            data = self.air.take()
            if data is None:
                return None
            h = airwire.parse(data)
            if h is None or not airwire.compatible(self._rx, h):
                self.counters["foreign"] += 1  # other SF/BW/frequency: not heard
                continue
            if self.air.lost():
                self.counters["lost"] += 1
                continue
            rssi, snr = self.air.link(h[7])
            if not airwire.above_floor(h[2], h[1], rssi, snr):
                self.counters["weak"] += 1
                continue
            pkt = RxPacket(memoryview(data)[airwire.HDR:])
            pkt.toa_us = h[8]  # real us it stays on the air from now
            pkt.rssi = rssi
            pkt.snr = int(round(snr * 4))
            self.counters["rx"] += 1
            return pkt

    async def recv(self, timeout_ms=None, rx_length=0xFF, rx_packet=None):
        # timeout_ms is in the clock's (virtual) milliseconds, like every time in the roles
        if not self.listening:
            self._drain()
            self.listening = True
        pkt = self._take()
        if pkt is not None:
            return await _ended(pkt)
        if timeout_ms is not None and timeout_ms <= 0:
            return None
        try:
            if timeout_ms is None:
                while pkt is None:
                    await _readable(self.sock)
                    pkt = self._take()
            else:
                end = self.clock.ms() + timeout_ms
                while pkt is None:
                    left = end - self.clock.ms()
                    if left <= 0:
                        break
                    await asyncio.wait_for_ms(_readable(self.sock), max(1, self.clock.real_ms(left)))
                    pkt = self._take()
        except asyncio.TimeoutError:  # noqa: UP041 (MicroPython: no builtin TimeoutError)
            pass
        return await _ended(pkt) if pkt is not None else None

    def close(self):
        self.air.close()


async def _ended(pkt):
    # A packet is received when it ends: its datagram came when it started.
    await asyncio.sleep_ms(pkt.toa_us // 1000)
    return pkt


async def _readable(sock):
    # Park this task on asyncio's poller until the socket has a datagram.
    yield asyncio.core._io_queue.queue_read(sock)
