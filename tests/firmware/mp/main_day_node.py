# A node's stand-ins for tests/firmware/mp/main_day.py: a TEST STAND-IN for the air plus a
# LoRaWAN network that answers the join request with a join accept and each confirmed uplink
# with an ACK, at the start of the class A receive window (RX1: 5 s after a join request, 1 s
# after a data frame); every 10th uplink is lost.
import struct

from main_day import CONFIRMED_UP, Air


class NodeAir(Air):
    def __init__(self, clock, sf, app_key):
        Air.__init__(self, clock, sf)
        self.app_key = app_key
        self.session = None
        self.down = 0
        self.reply = None
        self.at = 0
        self.counters["joins"] = 0
        self.counters["acks"] = 0

    def next(self):
        return self.at, self.reply

    def heard(self):
        self.reply = None

    def sent(self, up):
        self.reply = None
        if self.counters["tx"] % 10 == 0:
            return  # lost on the air
        if up[0] == 0:  # a join request: the accept opens RX1 5 s after it
            self.reply = self.join_accept(up[17] | up[18] << 8)
            self.at = self.clock.t + 5000
            self.counters["joins"] += 1
        elif up[0] == CONFIRMED_UP and self.session is not None:
            self.reply = self.session.build(0x60, self.down, None, b"", fctrl=0x20)  # ACK bit
            self.down += 1
            self.at = self.clock.t + 1000
            self.counters["acks"] += 1

    def join_accept(self, dev_nonce):
        # LoRaWAN 1.0.4 section 6.2.3: the network encrypts with AES *decrypt*
        import cryptolib
        from fp.lorawan.crypto import Cmac, aes
        from fp.lorawan.frames import Session

        jn, net = b"\x01\x00\x00", b"\x13\x00\x00"
        plain = jn + net + struct.pack("<IBB", 0x26011234, 0, 1)
        plain += Cmac(self.app_key).digest(b"\x20", plain)[:4]
        keys = []
        for tag in (1, 2):
            k = bytearray(16)
            aes(self.app_key).encrypt(bytes((tag,)) + jn + net + struct.pack("<H", dev_nonce) + bytes(7), k)
            keys.append(k)
        self.session = Session(0x26011234, keys[0], keys[1])
        self.down = 0
        return b"\x20" + cryptolib.aes(self.app_key, 1).decrypt(plain)
