# The LoRaWAN (ABP) side of tests/firmware/mp/sim_day.py, loaded only for an abp day, so that the
# v1 day's 64K heap does not carry it: the session the node is given, and the network's ACKs.
from fp.lorawan.frames import FCTRL_ACK, Session

SESSION = {
    "devaddr": "26011f2a",
    "nwk_skey": "2b7e151628aed2a6abf7158809cf4f3c",
    "app_skey": "000102030405060708090a0b0c0d0e0f",
}
_UNCONFIRMED_DOWN = 0x60


class Acks:
    # The network's ACK of each confirmed uplink: FCtrl ACK, no port, the next downlink counter.
    def __init__(self, lw):
        s = lw.session
        self.session = Session(s.devaddr, s.nwk_key, s.app_key)
        self.fcnt = 0

    def __call__(self):
        self.fcnt += 1
        return self.session.build(_UNCONFIRMED_DOWN, self.fcnt, None, b"", FCTRL_ACK)
