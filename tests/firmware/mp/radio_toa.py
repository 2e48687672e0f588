# The emulated chips' time on air (fp/hal/emu/chip.py, from the datasheets'
# formulas) for the cases in the JSON file named on argv (the unix port does
# not take arguments longer than about 256 bytes):
#   [[sx126x, sf, bw_hz, cr, ldro, preamble, payload, explicit, crc], ...]
# prints [[symbols_x4, toa_us], ...]
import json
import sys

from fp.hal.emu.chip import symbols_x4, toa_us

out = []
with open(sys.argv[1]) as f:
    cases = json.load(f)
for sx126x, sf, bw, cr, ldro, pre, pl, explicit, crc in cases:
    n = symbols_x4(pl, sf, cr, pre, explicit, crc, ldro, sx126x)
    out.append([n, toa_us(n, sf, bw)])
print(json.dumps(out))
