# Link self-test role: runs the serial link on the module's UART without radio or sensors,
# so the edge can test and benchmark the link against the real MicroPython interpreter.
#
#   micropython linktest.py [--echo] [--send N] [--every MS] [--size BYTES] [--id HEX16]
#                           [--window W] [--idle-ms MS]
#
# --echo (default): every DOWNLINK received is ACKed and sent back as an UPLINK with the
#   same payload. While more than a window of echoes waits, new DOWNLINKs get NACK BUSY.
# --send N: once the session is up, sends N UPLINKs (payload: 4-byte big-endian counter,
#   padded to --size bytes), then a STATUS frame {"sent": N, "acked": n, ...}.
# A DOWNLINK whose payload is b"?status" is answered with a STATUS frame holding the link's
# counters and rejected-input counts instead of an echo.
# --every MS: paced sending, one UPLINK every MS milliseconds (for the demo); without
#   --send it goes on for ever.
# Both modes at once are allowed. The UART is fp.hal.unix_uart on the unix port (edge.sim
# passes the pty) or machine.UART(LINKTEST_UART) on a board.
import asyncio
import sys
import time

from fp.frame import DOWNLINK, STATUS, UPLINK
from fp.link import EV_ACKED, EV_LOST, EV_RECEIVED, EV_REFUSED, EV_STARTED, Link
from fp.linkio import LinkIO

FW_VERSION = "0.1.0"


def parse_args(argv):
    opts = {"echo": False, "send": 0, "size": 16, "id": "00000000000000ff", "window": 8,
            "idle_ms": 2, "every": 0}
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--echo":
            opts["echo"] = True
        elif a in ("--send", "--size", "--window", "--idle-ms", "--id", "--every") and i + 1 < len(argv):
            v = argv[i + 1]
            i += 1
            if a == "--id":
                opts["id"] = v
            else:
                opts[a[2:].replace("-", "_")] = int(v)
        else:
            raise ValueError("linktest: bad argument " + a)
        i += 1
    if not opts["send"] and not opts["every"]:
        opts["echo"] = True
    if opts["every"] and not opts["send"]:
        opts["send"] = 1 << 30  # for ever, in practice
    if opts["size"] < 4 or opts["size"] > 512:
        raise ValueError("linktest: --size must be 4..512")
    return opts


def open_uart():
    if sys.platform == "linux":
        from fp.hal.unix_uart import UnixUART
        return UnixUART()
    from machine import UART
    return UART(0, 921600, timeout=0, rxbuf=1024)


class LinkTest:
    def __init__(self, uart, opts):
        self.opts = opts
        self.echoes = []  # payloads waiting for room in the window
        self.to_send = opts["send"]
        self.next_n = 0
        self.acked = 0
        self.refused = 0
        self.received = 0
        self.sessions = 0
        self.reported = False
        self.next_due = time.ticks_ms()
        hello = {"id": opts["id"], "fw": FW_VERSION, "role": "linktest", "board": sys.platform}
        if sys.platform == "linux":
            hello["board"] = "unix"
        self.link = Link(hello, time.ticks_ms, window=opts["window"], accept=(DOWNLINK,),
                         busy=self.busy)
        self.io = LinkIO(uart, self.link, self.on_event, idle_ms=opts["idle_ms"])

    def busy(self):
        return "echo queue full" if len(self.echoes) >= self.opts["window"] else None

    def on_event(self, ev):
        kind = ev[0]
        if kind == EV_RECEIVED:
            self.received += 1
            self.link.ack(ev[2])
            if bytes(ev[3]) == b"?status":
                self.echoes.append(None)  # a STATUS report, queued in order with the echoes
            elif self.opts["echo"]:
                self.echoes.append(ev[3])
        elif kind == EV_ACKED:
            if ev[1] is not None:
                self.acked += 1
        elif kind == EV_REFUSED:
            self.refused += 1
        elif kind == EV_STARTED:
            self.sessions += 1
        elif kind == EV_LOST:
            pass  # the link starts a new session by itself

    def payload(self, n):
        size = self.opts["size"]
        p = bytearray(size)
        p[0] = (n >> 24) & 0xFF
        p[1] = (n >> 16) & 0xFF
        p[2] = (n >> 8) & 0xFF
        p[3] = n & 0xFF
        for i in range(4, size):
            p[i] = (n + i) & 0xFF
        return p

    def feed(self):
        lk = self.link
        while self.echoes and lk.can_send():
            p = self.echoes.pop(0)
            if p is None:
                lk.send(STATUS, self.status())
            else:
                lk.send(UPLINK, p)
        every = self.opts["every"]
        while self.next_n < self.to_send and lk.can_send():
            if every:
                now = time.ticks_ms()
                if time.ticks_diff(now, self.next_due) < 0:
                    break
                self.next_due = time.ticks_add(now, every)
            lk.send(UPLINK, self.payload(self.next_n), self.next_n)
            self.next_n += 1
        if (self.to_send and not self.reported and self.acked + self.refused >= self.to_send
                and lk.can_send()):
            self.reported = True
            import json
            body = {"sent": self.next_n, "acked": self.acked, "refused": self.refused,
                    "received": self.received, "sessions": self.sessions,
                    "retx": self.link.counters["retransmits"], "rto": self.link.counters["rto_expiries"]}
            # kept short: on a noisy line every byte is a chance to lose the frame
            lk.send(STATUS, json.dumps(body).encode())

    def status(self):
        import gc
        import json
        gc.collect()
        return json.dumps({"counters": self.link.counters, "errors": self.link.deframer.errors,
                           "io": self.io.counters, "heap_free": gc.mem_free(),
                           "received": self.received}).encode()

    async def feeder(self):
        while True:
            if self.link.up:
                self.feed()
                self.io.flush()
            await asyncio.sleep_ms(1)

    async def main(self):
        asyncio.create_task(self.feeder())
        await self.io.run()


def main(argv=None):
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(LinkTest(open_uart(), opts).main())


if __name__ == "__main__":
    main()
