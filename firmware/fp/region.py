# Regional limits (LoRaWAN Regional Parameters RP002), read at boot (config, board, device) and
# dropped after (fp/store.py unload): a board keeps what it needs of them (fp/device.py sf, bw,
# max_payload; fp/airtime.py DutyBudget), not the table.

# Regions: duty cycle (fraction of time, None: no duty-cycle rule), and per
# data rate (SF, bandwidth kHz, largest MAC payload in bytes) from the LoRaWAN
# Regional Parameters (RP002). "sigfox" is the Sigfox-class budget: 12 bytes of
# payload up, carried here in a LoRaWAN frame (its 13 bytes around them: 25), and
# UPLINKS_PER_DAY.
REGIONS = {
    "EU868": (0.01, ((12, 125, 51), (11, 125, 51), (10, 125, 51), (9, 125, 115), (8, 125, 222),
                     (7, 125, 222))),
    "US915": (None, ((10, 125, 11), (9, 125, 53), (8, 125, 125), (7, 125, 242))),
    "AS923": (0.01, ((12, 125, 59), (11, 125, 59), (10, 125, 59), (9, 125, 123), (8, 125, 250),
                     (7, 125, 250))),
    "sigfox": (0.01, ((12, 125, 25),)),
}
# Uplinks a node may start in any 24 hours, where the region counts them (fp/daycount.py)
UPLINKS_PER_DAY = {"sigfox": 140}


class RegionError(ValueError):
    pass


def region_params(region, dr):
    # Returns (duty, sf, bw_khz, max_payload) or raises RegionError naming the problem.
    entry = REGIONS.get(region)
    if entry is None:
        raise RegionError("region %r unknown (known: %s)" % (region, ", ".join(sorted(REGIONS))))
    duty, rates = entry
    if not 0 <= dr < len(rates):
        raise RegionError("dr %r out of range 0..%d for %s" % (dr, len(rates) - 1, region))
    sf, bw, max_payload = rates[dr]
    return duty, sf, bw, max_payload
