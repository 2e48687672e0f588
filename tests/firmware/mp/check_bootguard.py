# The boot guard's backoff: each safe mode in a row holds twice as long, capped; a stable
# run clears it; a 4-byte file of firmware 0.2.0 is read as its boot count.
import struct

from fp import bootguard, store

holds = []
for _ in range(8):
    bootguard.enter()
    holds.append(bootguard.safe_entered("x") // 1000)
    bootguard.leave()
print("holds", *holds)
print("recovered", bootguard.recovered())
bootguard.clear()
print("after stable", bootguard.safe_entered("y") // 1000, bootguard.boots())
store.write_atomic(bootguard.PATH, struct.pack(">I", 5))
print("old file", bootguard.enter())
