# The loopback "air" of virtual modules (unix port only): one LoRa
# transmission is one UDP datagram on 127.0.0.1, sent to every peer port when
# the transmission STARTS; the receiver knows from the header how long the
# packet stays on the air. The payload is carried unchanged (the air does not
# look into it). Used by the emulated SX1276/SX1262 (fp/hal/emu/) and by the
# old air modem (fp/hal/air.py).
#
# Datagram header, big-endian, 23 bytes, then the payload:
#    0  4  magic b"FPA2"
#    4  4  frequency, Hz
#    8  4  bandwidth, Hz
#   12  1  spreading factor
#   13  1  coding rate denominator (5..8 for 4/5..4/8)
#   14  1  sync word (SX127x RegSyncWord form: SX126x 0xY4Z4 is 0xYZ here)
#   15  1  flags: 1 IQ inverted, 2 CRC on, 4 implicit header, 8 low data rate optimise
#   16  2  preamble length, symbols
#   18  1  transmit power, dBm (signed)
#   19  4  how long the packet occupies the air, in real us (its time on air
#          divided by the sender's time_scale: modules at other scales, and
#          CPython peers, then agree on when it ends)
#
# A receiver hears a packet when frequency (within a quarter of the
# bandwidth), bandwidth, SF, sync word and IQ polarity match, and when the
# signal is above the sensitivity and SNR limits of its SF (SX1276 datasheet
# table 13 / section 4.1.1.2, the same for SX1262 at 125 kHz). Link quality:
# config.json "air": {"rssi": dBm at 14 dBm transmit power, "snr": dB, "loss":
# share of packets lost, "seed"}; RSSI follows the sender's power dB for dB.
import random
import socket
import struct

from micropython import const

MAGIC = b"FPA2"
HDR = const(23)
MAX = const(255 + 23)
_FMT = ">4sIIBBBBHbI"

F_IQ_INV = const(1)
F_CRC = const(2)
F_IMPLICIT = const(4)
F_LDRO = const(8)

# SNR floor (dB) and sensitivity at 125 kHz (dBm) by SF 6..12
_SNR_MIN = (-5.0, -7.5, -10.0, -12.5, -15.0, -17.5, -20.0)
_SENS_125 = (-118, -123, -126, -129, -132, -134, -137)


def header(freq_hz, bw_hz, sf, cr, sync, flags, preamble, power_dbm, toa_us):
    return struct.pack(_FMT, MAGIC, freq_hz, bw_hz, sf, cr, sync, flags, preamble, power_dbm, toa_us)


def parse(data):
    # (freq_hz, bw_hz, sf, cr, sync, flags, preamble, power, toa_us) or None
    if len(data) < HDR or data[:4] != MAGIC:
        return None
    return struct.unpack_from(_FMT, data, 0)[1:]


def compatible(rx, tx):
    # rx, tx: header tuples as parse() gives. True when rx can demodulate tx.
    return (rx[2] == tx[2] and rx[1] == tx[1] and abs(rx[0] - tx[0]) <= rx[1] // 4
            and rx[4] == tx[4] and (rx[5] & F_IQ_INV) == (tx[5] & F_IQ_INV))


def above_floor(sf, bw_hz, rssi, snr):
    i = min(max(sf, 6), 12) - 6
    sens = _SENS_125[i]
    # 3 dB less sensitive per doubling of the bandwidth (noise = kTB)
    b = bw_hz
    while b > 187500:
        sens += 3
        b //= 2
    while b < 93750:
        sens -= 3
        b *= 2
    return snr >= _SNR_MIN[i] and rssi >= sens


class Air:
    def __init__(self, port=0, peers=(), loss=0.0, rssi=-90, snr=7.5, seed=None):
        self.peers = [socket.getaddrinfo("127.0.0.1", p)[0][-1] for p in peers]
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
        self.port = port
        self.counters = {"tx": 0, "rx": 0, "lost": 0, "missed": 0, "foreign": 0, "weak": 0, "collided": 0}
        self._buf = bytearray(MAX)

    def random(self):
        return self.rng.random() if self.rng else random.random()

    def send(self, hdr, payload):
        data = hdr + bytes(payload)
        for addr in self.peers:
            try:
                self.sock.sendto(data, addr)
            except OSError:
                pass  # nobody there: lost in the air, as it would be
        self.counters["tx"] += 1

    def take(self):
        # One datagram waiting on the socket (bytes), or None.
        try:
            data = self.sock.recv(MAX)
        except OSError:
            return None
        return data or None

    def link(self, power_dbm):
        # (rssi dBm, snr dB) of one packet from a sender at power_dbm
        jitter = self.random() * 4 - 2
        return int(self.rssi + (power_dbm - 14) + jitter), self.snr + jitter / 2

    def lost(self):
        return self.loss and self.random() < self.loss

    def close(self):
        self.sock.close()
