# micropython-lib's lora driver (firmware/lib/lora, unchanged) on two emulated
# chips wired as two board profiles, exactly as the unix HAL builds them
# (fp/hal/emu/radio.make_chip + fp/hal/mcu.make_modem): init, configure, send
# A->B, reply B->A, an RX timeout, standby and sleep. Prints one JSON document
# with every SPI transaction (MOSI/MISO hex) per phase, what was received, the
# time spent in each chip state and the chips' invalid-use logs; the pytest
# side (tests/firmware/test_radio_emulation.py) checks them against the
# datasheets.
# usage: micropython radio_session.py <board A> <board B> <port A> <port B> <boards dir> [cfg json]
import asyncio
import json
import sys
import time

from fp.hal import airwire, board, mcu
from fp.hal.emu import radio

A, B, PA, PB, BOARDS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
CFG = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}


def hexs(trace):
    out = [[bytes(m).hex(), bytes(r).hex()] for m, r in trace]
    trace.clear()
    return out


def make(name, port, peer, rssi, snr, seed):
    profile = json.load(open("%s/%s.json" % (BOARDS, name)))
    air = airwire.Air(port, (peer,), 0.0, rssi, snr, seed)
    trace = []
    chip, machine = radio.make_chip(profile, air, 1, trace=trace)
    chip.start()
    drv = mcu.make_modem(machine, profile, board.lora_cfg(profile, 7, 125))
    return profile, chip, drv, trace


def pkt(p):
    if p is None:
        return None
    return {"data": bytes(p).hex(), "rssi": p.rssi, "snr": p.snr, "crc_error": p.crc_error}


async def exchange(tx, rx, payload, timeout_ms):
    got = asyncio.create_task(rx.recv(timeout_ms=timeout_ms))
    await asyncio.sleep_ms(20)  # the receiver is listening before the packet starts
    t0 = time.ticks_ms()
    await tx.send(payload)
    sent_ms = time.ticks_diff(time.ticks_ms(), t0)
    p = await got
    return p, sent_ms


async def main():
    out = {}
    pa, ca, da, ta = make(A, PA, PB, -80, 9.0, 1)
    pb, cb, db, tb = make(B, PB, PA, -104, -3.5, 2)
    out["init"] = {"a": hexs(ta), "b": hexs(tb)}

    cfg = {"sf": 9, "bw": "125", "coding_rate": 7, "output_power": 10, "freq_khz": 869525, "preamble_len": 10}
    cfg.update(CFG)
    da.configure(cfg)
    db.configure(cfg)
    out["configure"] = {"a": hexs(ta), "b": hexs(tb), "cfg": cfg}

    payload = bytes(range(1, 21))
    p, sent_ms = await exchange(da, db, payload, 3000)
    out["send"] = {
        "a": hexs(ta),
        "b": hexs(tb),
        "got": pkt(p),
        "sent_ms": sent_ms,
        "toa_us": da.get_time_on_air_us(len(payload)),
        "chip_toa_us": ca.last_toa_us,
        "a_state": ca.state_ms(),
    }

    reply = b"\x60reply"
    p, sent_ms = await exchange(db, da, reply, 3000)
    out["reply"] = {
        "a": hexs(ta),
        "b": hexs(tb),
        "got": pkt(p),
        "sent_ms": sent_ms,
        "toa_us": db.get_time_on_air_us(len(reply)),
        "chip_toa_us": cb.last_toa_us,
    }

    t0 = time.ticks_ms()
    p = await db.recv(timeout_ms=300)
    out["timeout"] = {"b": hexs(tb), "got": pkt(p), "ms": time.ticks_diff(time.ticks_ms(), t0)}

    before_a, before_b = ca.state_ms(), cb.state_ms()
    da.sleep()
    db.standby()
    await asyncio.sleep_ms(200)
    out["idle"] = {
        "a": hexs(ta),
        "b": hexs(tb),
        "a_before": before_a,
        "b_before": before_b,
        "a_after": ca.state_ms(),
        "b_after": cb.state_ms(),
    }

    # asleep, A still hears nothing; after waking (the next operation) it does
    got = asyncio.create_task(da.recv(timeout_ms=1500))
    await asyncio.sleep_ms(20)
    await db.send(b"after sleep")
    p = await got
    out["wake"] = {"got": pkt(p), "a": hexs(ta)}

    for k, c in (("a", ca), ("b", cb)):
        out["chip_" + k] = {
            "name": c.name,
            "invalid": c.invalid,
            "notes": c.notes,
            "log": c.log,
            "counters": c.counters,
            "tx_power": c.tx_power,
        }
    out["crc_errors"] = [da.crc_errors, db.crc_errors]
    ca.close()
    cb.close()
    print(json.dumps(out))


asyncio.run(main())
