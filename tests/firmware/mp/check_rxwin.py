# Prints JSON: the class A receive windows (fp/lorawan/phy.py window, rx_timing), for pytest to check.
import json

from fp.region import REGIONS, RegionError, region_params
from fp.lorawan.phy import rx_timing, window

out = {
    # window n after an uplink on 868.1 MHz at DR5; DLSettings (RX1DROffset << 4 | RX2 DR) or None (defaults)
    "eu868": [
        window("EU868", 1, 868100, 5, None),
        window("EU868", 1, 868100, 5, 0x20),
        window("EU868", 1, 868100, 1, 0x30),
        window("EU868", 2, 868100, 5, None),
        window("EU868", 2, 868100, 5, 0x03),
    ],
    # uplink channel 9 (904.1 MHz) at DR0 and DR4: RX1 on downlink channel 9 mod 8 = 1 (923.9 MHz)
    "us915": [
        window("US915", 1, 904100, 0, None),
        window("US915", 1, 904100, 4, 0x08),
        window("US915", 1, 904100, 3, 0x58),
        window("US915", 2, 904100, 0, None),
    ],
    "as923": [
        window("AS923", 1, 923200, 5, None),
        window("AS923", 1, 923200, 4, 0x72),
        window("AS923", 1, 923200, 1, 0x32),
        window("AS923", 2, 923200, 5, None),
    ],
    "timing": [rx_timing(1, 1), rx_timing(5, 1), rx_timing(3, 0), rx_timing(1, 20), rx_timing(1, 1000)],
    # a Sigfox-class budget is on the EU868 band: its windows, at its one data rate (SF12)
    "sigfox": [window("sigfox", 1, 868100, 0, None), window("sigfox", 2, 868100, 0, None)],
}
for args in (("KR920", 1, 922100, 0, 0), ("US915", 2, 904100, 0, 14)):
    try:
        window(*args)
    except RegionError as e:
        out.setdefault("errors", []).append(str(e))
# window() computes a 125 kHz rate's SF itself (fp/region.py is dropped after boot): every RX2 data
# rate of every region as the table has it, [region, dr, window's (sf, bw), the table's (sf, bw)]
out["table"] = []
for region in sorted(REGIONS):
    for dr in range(len(REGIONS[region][1])):
        _, sf, bw = window(region, 2, 868100, 0, dr)
        out["table"].append([region, dr, [sf, bw], list(region_params(region, dr)[1:3])])
print(json.dumps(out))
