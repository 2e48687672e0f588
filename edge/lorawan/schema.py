"""Migration 0010_lorawan: the join server's and the network server's tables.

Existing devices keep their rows: the device id becomes the DevEUI (both are 8 bytes shown as
16 hex digits) and the device key the AppKey, so a module reflashed with the LoRaWAN firmware
and the same config.json joins with what it already has. Readings keep their ids.
"""

MIGRATION = """
-- JoinEUI the device joins with (NULL: the edge's [lorawan] join_eui); the highest DevNonce a
-- join request of it carried (LoRaWAN 1.0.4: a counter, so a replayed request is refused).
ALTER TABLE devices ADD COLUMN join_eui TEXT CHECK (join_eui IS NULL OR length(join_eui) = 16);
ALTER TABLE devices ADD COLUMN dev_nonce INTEGER NOT NULL DEFAULT -1;
-- 1 after the edge told the device its counter went back: its next session's ids are moved
-- above everything stored, whatever counter it announces.
ALTER TABLE devices ADD COLUMN lorawan_reset INTEGER NOT NULL DEFAULT 0;
-- One session per device (the latest join, or ABP): its keys and counters.
CREATE TABLE lorawan_sessions (
    device_id TEXT PRIMARY KEY,
    devaddr INTEGER NOT NULL UNIQUE,
    nwk_skey BLOB NOT NULL CHECK (length(nwk_skey) = 16),
    app_skey BLOB NOT NULL CHECK (length(app_skey) = 16),
    base INTEGER NOT NULL,                            -- message id counter = base + session FCnt
    fcnt_up INTEGER NOT NULL DEFAULT -1,              -- highest 32-bit FCntUp stored this session
    fcnt_down INTEGER NOT NULL DEFAULT 0,             -- next NFCntDown
    dev_nonce INTEGER,                                -- the join it came from (NULL: ABP)
    joined_at REAL NOT NULL
);
-- Counters of the network/join server: the next JoinNonce, frames dropped by flood limits.
CREATE TABLE lorawan_counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""
