# The loopback "air" of virtual modules: LoRa packets as UDP datagrams on
# 127.0.0.1, with the interface of micropython-lib's lora AsyncModem
# (send / recv / get_time_on_air_us / standby / sleep) so the roles cannot
# tell it from an SX127x or SX126x driver.
#
# config.json "air": {"port": own UDP port (0: any), "peers": [ports to send to],
#                     "loss": 0..1 (drop probability of each received packet),
#                     "rssi": dBm, "snr": dB (reported for received packets), "seed": int}
# A transmission takes its LoRa time on air (scaled with the clock) before the
# datagram leaves; a receiver hears only packets of its own SF/BW/frequency,
# only while listening (not while sending or in standby): half duplex, as on a
# real radio.
import asyncio
import random
import socket
import struct
from time import ticks_ms

from fp.airtime import time_on_air_us
from micropython import const

_MAGIC = b"FPA1"
_HDR = const(11)  # magic, sf u8, bw u16 (kHz), freq u32 (kHz)
_MAX = const(255 + 11)


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
        self.configure(lora_cfg)
        self.peers = list(peers)
        self.loss = loss
        self.rssi = rssi
        self.snr = snr
        self.rng = random.Random(seed) if seed is not None and hasattr(random, "Random") else None
        if seed is not None and self.rng is None:
            random.seed(seed)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        s.setblocking(False)
        self.sock = s
        self.listening = False
        self.counters = {"tx": 0, "rx": 0, "lost": 0, "missed": 0, "foreign": 0}
        self._buf = bytearray(_MAX)

    def _random(self):
        return self.rng.random() if self.rng else random.random()

    def configure(self, lora_cfg):
        self.lora_cfg.update(lora_cfg)
        c = self.lora_cfg
        self._hdr = _MAGIC + struct.pack(">BHI", c.get("sf", 12), int(c.get("bw", 125)),
                                         c.get("freq_khz", 868100))

    def get_time_on_air_us(self, payload_len):
        c = self.lora_cfg
        return time_on_air_us(payload_len, c.get("sf", 12), int(c.get("bw", 125)), c.get("coding_rate", 5),
                              c.get("preamble_len", 8), not c.get("implicit_header", False),
                              c.get("crc_en", True))

    def _drain(self):
        # Whatever arrived while we were deaf is gone, as on the air.
        while True:
            try:
                n = len(self.sock.recv(_MAX))
            except OSError:
                return
            if not n:
                return
            self.counters["missed"] += 1

    def standby(self):
        self.listening = False

    def sleep(self):
        self.listening = False

    async def send(self, packet, tx_at_ms=None):
        self.listening = False
        await self.clock.sleep_ms(self.get_time_on_air_us(len(packet)) // 1000)
        data = self._hdr + bytes(packet)
        for p in self.peers:
            try:
                self.sock.sendto(data, socket.getaddrinfo("127.0.0.1", p)[0][-1])
            except OSError:
                pass  # nobody there: the packet is lost in the air, as it would be
        self.counters["tx"] += 1
        self._drain()
        return ticks_ms()

    def _take(self):
        # One received packet, or None when nothing (more) is waiting.
        while True:
            try:
                data = self.sock.recv(_MAX)
            except OSError:
                return None
            if not data:
                return None
            if data[:_HDR] != self._hdr:
                self.counters["foreign"] += 1  # other SF/BW/frequency: not heard
                continue
            if self.loss and self._random() < self.loss:
                self.counters["lost"] += 1
                continue
            pkt = RxPacket(data[_HDR:])
            jitter = self._random() * 4 - 2
            pkt.rssi = int(self.rssi + jitter)
            pkt.snr = int(round((self.snr + jitter / 2) * 4))
            self.counters["rx"] += 1
            return pkt

    async def recv(self, rx_length=0xFF, timeout_ms=None, rx_packet=None):
        # timeout_ms is in the clock's (virtual) milliseconds, like every time in the roles
        if not self.listening:
            self._drain()
            self.listening = True
        pkt = self._take()
        if pkt is not None:
            return pkt
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
        return pkt

    def close(self):
        self.sock.close()


async def _readable(sock):
    # Park this task on asyncio's poller until the socket has a datagram.
    yield asyncio.core._io_queue.queue_read(sock)
