# Round trips over the loopback air in one interpreter: A sends a 29-byte
# frame, B (listening) receives it and answers with a 20-byte one, A receives
# that. Both modems are what a virtual module of the board gets as hal.modem
# (fp/hal/unix.make): the lora driver over the emulated chip, or the old air
# modem for "unix_air". Prints JSON: real us per round trip, SPI transactions
# per packet, time on air.
# With "sync" as a 7th argument: no asyncio, the driver's low-level API
# (prepare_send/start_send/poll_send, start_recv/poll_recv) and the chips
# polled in a loop: the host time the driver and the emulated chips take per
# packet, without asyncio's wake-up latency (a ThreadSafeFlag on the unix port
# is polled in ~1 ms slices).
# usage: micropython radio_pingpong.py <board> <n> <time_scale> <port A> <port B> <boards dir> [sync]
import asyncio
import json
import sys
import time

from fp.hal import board, unix
from fp.hal.clock import Clock

BOARD, N, SCALE, PA, PB, BOARDS = (
    sys.argv[1],
    int(sys.argv[2]),
    float(sys.argv[3]),
    int(sys.argv[4]),
    int(sys.argv[5]),
    sys.argv[6],
)

UP = bytes(range(29))
DOWN = bytes(range(100, 120))


def modem(port, peer):
    profile = json.load(open("%s/%s.json" % (BOARDS, BOARD)))
    cfg = {
        "region": "EU868",
        "dr": 5,
        "role": "node",
        "time_scale": SCALE,
        "air": {"port": port, "peers": [peer], "rssi": -90, "snr": 7, "seed": port},
    }
    return unix.make(profile, cfg, Clock(SCALE), with_uart=False)


def spi_count(m):
    chip = getattr(m.modem, "chip", None)
    return chip.transactions if chip is not None else 0


async def main():
    a = modem(PA, PB)
    b = modem(PB, PA)
    ok = 0
    lost = 0

    async def answer():
        while True:
            p = await b.modem.recv(timeout_ms=int(5000 * SCALE))
            if p is not None:
                await b.modem.send(DOWN)

    task = asyncio.create_task(answer())
    await asyncio.sleep_ms(20)
    a0, b0 = spi_count(a), spi_count(b)
    t0 = time.ticks_us()
    for _ in range(N):
        await a.modem.send(UP)
        p = await a.modem.recv(timeout_ms=int(200 * SCALE))
        if p is not None and bytes(p) == DOWN:
            ok += 1
        else:
            lost += 1
            await asyncio.sleep_ms(5)
    us = time.ticks_diff(time.ticks_us(), t0)
    spi_a, spi_b = spi_count(a) - a0, spi_count(b) - b0
    task.cancel()
    toa = a.modem.get_time_on_air_us(len(UP)) + a.modem.get_time_on_air_us(len(DOWN))
    a.close()
    b.close()
    print(
        json.dumps(
            {
                "board": BOARD,
                "n": N,
                "ok": ok,
                "lost": lost,
                "us_per_round_trip": us // N,
                "toa_us_per_round_trip": toa,
                "scale": SCALE,
                "spi_per_packet": (spi_a + spi_b) / (2 * N) if ok else 0,
            }
        )
    )


def sync():
    # one packet A -> B per iteration, the chips run at once (time_scale very high)
    a = modem(PA, PB)
    b = modem(PB, PA)
    da, db = a.modem.drv, b.modem.drv
    ca, cb = a.modem.chip, b.modem.chip
    ok = 0
    n0 = ca.transactions + cb.transactions
    t0 = time.ticks_us()
    for _ in range(N):
        db.start_recv(timeout_ms=1000)
        da.prepare_send(UP)
        da.start_send()
        while da.poll_send() is True:
            ca.poll()
        got = True
        while got is True:
            cb.poll()
            got = db.poll_recv()
        if got and bytes(got) == UP:
            ok += 1
    us = time.ticks_diff(time.ticks_us(), t0)
    spi = ca.transactions + cb.transactions - n0
    a.close()
    b.close()
    print(
        json.dumps(
            {"board": BOARD, "n": N, "ok": ok, "host_us_per_packet": us // N, "spi_per_packet": spi / N}
        )
    )


if len(sys.argv) > 7 and sys.argv[7] == "sync":
    sync()
else:
    asyncio.run(main())
