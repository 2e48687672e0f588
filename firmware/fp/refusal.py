# What a module on the serial link does when the edge refuses one of its own
# uplinks for good (ACK result 2..5, docs/radio.md section 4). Only such a module
# learns it (a bridge's own readings and answers): for radio nodes the bridge
# relays nothing but the downlinks of results 0 and 1, since it cannot sign a
# rejection and an unsigned one would let anyone on the air make a node throw
# its readings away. Kept apart from fp/device.py so a node does not load it.
#
# Readings are precious, so one refusal is never enough: the frame stays at the
# head of the journal and is retried with backoff (fp/roles/bridge.py). But a
# frame the edge will never accept must not wedge the journal in front of every
# later reading, so after LIMIT refusals in a row of the same frame it is given
# up: a REFUSED record in the journal, counted (STATUS "given_up"; "f" in a
# port-3 status), logged.
#
# Why each result counts or not:
# - bad MIC: every frame is signed when it is sent, with the key the module holds
#   then (Device.next_uplink), so it no longer means "journaled before a key
#   rotation". It means this frame is damaged, or the edge holds another key than
#   ours. In that second case every frame is refused in turn; the backoff between
#   tries (doubling up to retry_max) limits the loss to about one reading per
#   LIMIT * retry_max seconds while the operator fixes the key, and the journal
#   keeps the rest for when the keys match again.
# - replayed counter: the edge's floor is above this fcnt, or it holds another
#   reading at this fcnt (stored before a key rotation): resending can never
#   succeed. (The same reading stored before a rotation whose ACK was lost is
#   answered "duplicate" with its downlink: same port and payload, edge/ingest.)
# - malformed: the same bytes stay malformed.
# - unknown device: not about this frame. The edge quarantined the device; when an
#   operator adopts it, everything journaled is wanted. Kept, never counted here.
from fp import radio_frame as rf
from micropython import const

LIMIT = const(5)


class Refusals:
    def __init__(self, journal, log):
        self.journal = journal
        self.log = log
        self.fcnt = -1  # the frame refused last, and how many times in a row
        self.count = 0

    def refused(self, fcnt, code):
        # True when the frame was given up (gone from the journal).
        if code == rf.ACK_UNKNOWN_DEVICE:
            self.fcnt, self.count = -1, 0
            return False
        if fcnt != self.fcnt:
            self.fcnt, self.count = fcnt, 0
        self.count += 1
        if self.count < LIMIT:
            return False
        self.fcnt, self.count = -1, 0
        if not self.journal.done(fcnt, True):
            return False
        self.log("error", "uplink %d given up: refused %d times by the edge (result %d)" % (fcnt, LIMIT, code))
        return True
