# A node's LoRaWAN activation: OTAA join (DevNonce a counter persisted ahead of
# use, so it is never reused even across a power cut), or ABP keys from
# config.json; the session (DevAddr, keys, counters) kept power-safely in one
# small file so a reboot or a deep sleep does not need a new join.
#
# The journal keeps frames in the Fieldpost record layout (fp/radio_frame.py
# `unsigned`: kind, device id, 32-bit local counter, port, payload); a record
# becomes a LoRaWAN frame only when it goes on the air (uplink), at session
# FCnt = local counter - base. `base` is the first record still pending when
# the session began, so a rejoin numbers what is waiting from 0 again and
# nothing in the journal is lost (docs/radio.md, "Counters across sessions").
import struct
from binascii import crc32, unhexlify

from fp import store
from fp.lorawan import frames as F
from micropython import const

_SESSION = "lw_session"
PORT_CONTROL = const(4)  # edge -> node: 0x01 = join again (docs/radio.md)
REJOIN = const(1)
PORT_SESSION = const(5)  # node -> edge: the first frame of a session, the counter of the next record


class LoRaWAN:
    def __init__(self, cfg):
        self.dev_eui = unhexlify(cfg["id"])
        self.join_eui = unhexlify(cfg["join_eui"])
        self._app_key = unhexlify(cfg["key"])
        # a saved session belongs to the AppKey it was joined with: a new key (provisioning,
        # rotation) means a new join, never the old session's keys
        self._key_tag = struct.pack(">I", crc32(self._app_key) & 0xFFFFFFFF)
        self._app = None  # the AppKey's Cmac, made at the first join
        self._rec = None  # the session file's record (_save)
        self.session = None
        self.base = 0
        self.fcnt_down = -1
        self.rx1_delay = 1
        self.dl_settings = None  # the join accept's DLSettings (None: ABP, the region's defaults)
        self.joins = 0
        self.announced = False  # the edge has the session's first counter (FCnt 0, port 5)
        self.answered = False  # a downlink of our session arrived since the last fragment request
        self.dev_nonce = None  # read from flash at the first join (fp/lorawan/join.py)
        if cfg["activation"] == "abp":
            self.session = F.Session(int(cfg["devaddr"], 16), unhexlify(cfg["nwk_skey"]), unhexlify(cfg["app_skey"]))
            self.abp = True
        else:
            self.abp = False
        self._load()

    @property
    def joined(self):
        return self.session is not None

    def _load(self):
        body = store.read_atomic(_SESSION)
        if body is None or len(body) != 50 or body[46:] != self._key_tag:
            return
        devaddr, nwk, app, self.base, self.fcnt_down, self.rx1_delay, flags = struct.unpack_from(
            ">I16s16siiBB", body)
        # bit 0: announced; bits 7..1: the join accept's DLSettings (a file from before they
        # were kept has 0 there: RX1DROffset 0, RX2 DR0, what those sessions were given)
        self.announced = bool(flags & 1)
        if not self.abp:
            self.dl_settings = flags >> 1
        if self.abp and devaddr != self.session.devaddr:
            return  # ABP keys changed in config.json since: counters start over with them
        self.session = F.Session(devaddr, nwk, app)

    def _save(self):
        # at every downlink (its counter): packed into one buffer kept for it, not built anew
        s = self.session
        buf = self._rec
        if buf is None:
            buf = self._rec = bytearray(50)
            buf[46:] = self._key_tag
        struct.pack_into(">I16s16siiBB", buf, 0, s.devaddr, s.nwk_key, s.app_key, self.base, self.fcnt_down,
                         self.rx1_delay, (self.dl_settings or 0) << 1 | self.announced)
        store.write_atomic(_SESSION, buf)

    def join_request(self):
        from fp.lorawan import join
        return join.request(self)

    def accept(self, frame):
        from fp.lorawan import join
        join.accept(self, frame)
        # Joined: the join code and the AppKey's cipher are not needed until the next join
        # (which loads them again; the DevNonce counter is on flash). A 64K board needs the RAM.
        self._app = None
        del join
        store.unload("fp.lorawan.join")

    def announcement(self, head):
        # FCnt 0 of a session: "my next record has counter `head`" (port 5), so the
        # edge gives readings the ids of their local counters. Records then go out
        # at FCnt = counter - base, from 1.
        self.base = head - 1
        return self.session.build(F.CONFIRMED_UP, 0, PORT_SESSION, struct.pack(">I", head))

    def set_announced(self):
        self.announced = True
        self._save()

    def forget(self):
        # The edge says our counter went back (docs/radio.md): join again.
        self.session = None
        store.remove(_SESSION)

    def uplink(self, record, confirmed=True):
        # A journal record as a LoRaWAN data frame of this session.
        fcnt = struct.unpack_from(">I", record, 9)[0] - self.base
        if fcnt < 1:
            raise F.FrameError("fcnt", "record older than the session")
        mhdr = F.CONFIRMED_UP if confirmed else F.UNCONFIRMED_UP
        return self.session.build(mhdr, fcnt, record[13], memoryview(record)[14:])

    def open_downlink(self, frame):
        # (ACK bit, FPort or None, plaintext) of a downlink of our session, or
        # FrameError: another device's ("device"), forged ("mic"), replayed ("fcnt").
        parsed = F.parse(frame)
        mhdr, devaddr, _, fcnt16, _, _, _ = parsed
        if mhdr not in F.DOWNLINKS:
            raise F.FrameError("mtype", "not a downlink")
        if self.session is None or devaddr != self.session.devaddr:
            raise F.FrameError("device", "downlink for another device")
        full = F.full_fcnt(self.fcnt_down, fcnt16)
        try:
            _, fctrl, _, fport, data = self.session.open(frame, full, parsed)
        except F.FrameError:
            if full < 0x10000:
                raise
            # one wrap lower: an older downlink arriving late (an ACK of a retry), not a forgery
            full -= 0x10000
            _, fctrl, _, fport, data = self.session.open(frame, full, parsed)
        if full <= self.fcnt_down:
            raise F.FrameError("fcnt", "downlink counter %d not above %d" % (full, self.fcnt_down))
        self.fcnt_down = full
        self._save()  # a replayed old downlink must not ACK a reading after a reboot either
        return bool(fctrl & F.FCTRL_ACK), fport, data

    def downlink(self, dev, frame, fcnt):
        # fp/device.py handle_downlink for a LoRaWAN node (`dev`): True when it acknowledged
        # uplink `fcnt` (None: the session start).
        try:
            ack, port, data = self.open_downlink(frame)
        except F.FrameError as e:
            # others' frames are not our errors, nor a late copy of an older downlink of ours
            if e.args[0] not in ("device", "mtype", "short", "fcnt"):
                dev.reject(e.args[0], e.args[1] if len(e.args) > 1 else "")
                dev.status_due = True
            return False
        if port == PORT_CONTROL and data == bytes((REJOIN,)):
            # Our counter went back under this session (the edge refused, never dropped, the
            # frame): join again; the journal goes out again under the new session.
            self.forget()
            dev.log("warn", "edge asked for a rejoin")
            return False
        if ack and fcnt is not None and dev.journal.done(fcnt):
            dev.stats["acked"] += 1
        self.answered = True  # a downlink of ours came (an update's chunk needs no ACK bit)
        if port == 3:  # fp/radio_frame.py DL_PORT_COMMAND
            dev.command(data)
        elif port == 6 or port == 7:  # fp/update_air.py PORT, PORT_FRAG: an update's offer or chunk
            from fp import update_air
            update_air.on_downlink(dev, port, data)
        return ack

    def fragment_request(self, counter, payload):
        # An update's fragment request (fp/update_air.py) at the node's local counter `counter`
        # (taken like a record's, never journaled): unconfirmed, its answer is the chunk itself.
        self.answered = False
        return self.session.build(F.UNCONFIRMED_UP, counter - self.base, 7, payload)


async def join(node, now):
    # A node's (fp/roles/node.py) OTAA join: a join request, then the join accept in the receive
    # window; the ms to wait before the next attempt. The new session numbers the journal from its
    # oldest pending record. Here, not in the node: a v1 node never loads it.
    dev = node.dev
    toa = (node.modem.get_time_on_air_us(F.JOIN_REQUEST_SIZE) + 999) // 1000
    wait = dev.budget.wait_ms(now, toa)
    if wait > 0:
        return wait
    frame = dev.lw.join_request()  # a new DevNonce, spent even if nobody answers
    dev.budget.record(now, toa)
    node._t("join", dev.lw.dev_nonce)
    await node.transmit(frame)
    t_end = node.clock.ms()
    try:
        for n in (1, 2):  # JOIN_ACCEPT_DELAY1 and 2: 5 and 6 s after the request
            pkt = await rx(node, n, t_end, True)
            if pkt is None:
                continue
            try:
                dev.lw.accept(bytes(pkt))
            except ValueError:
                continue  # not our join accept
            node.attempts = 0
            node._t("joined", dev.lw.session.devaddr)
            return 0
    finally:
        node.modem.sleep()
        node._radio("sleep")
    node.attempts += 1
    return node.backoff_ms()


async def listen(node, fcnt, answer):
    # A node's (fp/roles/node.py) class A windows after the uplink it just sent: True once a
    # downlink acknowledged uplink `fcnt` (answer: once any downlink of our session came). A
    # downlink in RX1 that does ends the exchange: RX2 is not opened.
    t_end = node.clock.ms()  # the uplink's end: both windows count from it
    dev = node.dev
    try:
        for n in (1, 2):
            pkt = await rx(node, n, t_end, False)
            if pkt is not None and (dev.handle_downlink(pkt, fcnt) or (answer and dev.lw.answered)):
                return True
        return False
    finally:
        # the windows are over: the radio sleeps until the next uplink (a node is on a battery)
        node.modem.sleep()
        node._radio("sleep")


async def rx(node, n, t_end, join):
    # A node's (fp/roles/node.py) receive window n (1 or 2) after an uplink that
    # ended at clock ms t_end: the packet whose preamble came while it was open, or None. The
    # radio stands by until the window opens and after it; it listens on the window's frequency
    # and data rate, then is set back to the uplinks'. The join accept's RxDelay and DLSettings
    # time a session's windows; a join's (JOIN_ACCEPT_DELAY1: 5 s) and an ABP session's are the
    # region's defaults.
    from fp.lorawan import phy
    dev = node.dev
    lw = dev.lw
    clock = node.clock
    cfg = dev.cfg
    dl = None if join else lw.dl_settings
    up = ((node.hal.profile.get("radio") or {}).get("freq_khz", 868100), dev.sf, dev.bw)
    params = phy.window(cfg["region"], n, up[0], cfg["dr"], dl)
    d = phy.rx_timing(5 if join else lw.rx1_delay, clock.scale)
    wait = t_end + d[n - 1] - d[2] - clock.ms()
    if wait > 0:
        await clock.sleep_ms(wait)
    modem = node.modem
    tune = getattr(node, "_tune", None)
    retune = params != up
    if not getattr(node, "_iq_inv", False):
        # Downlinks come with inverted IQ (as from any LoRaWAN gateway), uplinks go with normal IQ:
        # in its windows a node hears the gateway, never another node's uplink. A LoRaWAN node
        # receives only in its windows, so its receiver stays inverted once set.
        modem.configure({"invert_iq_rx": True})
        node._iq_inv = True
    if retune and (tune is None or tune[0] != params):
        # the lora_cfg changes to and from this window's channel, made once (not per uplink)
        tune = node._tune = (params, {"freq_khz": params[0], "sf": params[1], "bw": str(params[2])},
                             {"freq_khz": up[0], "sf": up[1], "bw": str(up[2])})
    if retune and tune is not None:
        modem.configure(tune[1])
    node._radio("rx")
    try:
        # open for the preamble (8 + 4.25 symbols, fp/hal/board.lora_cfg) and a margin either side
        pkt = await modem.recv(timeout_ms=2 * d[2] + (49 * (1 << params[1]) // params[2] + 3) // 4 + 1)
    finally:
        modem.standby()
        node._radio("standby")
        if retune and tune is not None:  # back to the uplinks' channel: always ready to send
            modem.configure(tune[2])
    if pkt is not None:
        node._t("window", n)
    return pkt
