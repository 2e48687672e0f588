"""Named schema migrations, applied in order and recorded in the ``migrations`` table.

Never edit a migration that has shipped: add a new one. Each runs in its own
transaction together with the row that records it, so a crash mid-migration
leaves the database at the previous step.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from edge.lorawan import schema as lorawan_schema
from edge.store import migrate_v2
from edge.store.connection import run_script, transaction

Migration = tuple[str, str | Callable[[sqlite3.Connection], None]]

MIGRATIONS: list[Migration] = [
    (
        "0001_devices",
        """
        CREATE TABLE devices (
            id TEXT PRIMARY KEY CHECK (length(id) = 16),      -- 8 bytes as hex
            name TEXT NOT NULL DEFAULT '',
            key BLOB NOT NULL CHECK (length(key) = 16),
            codec TEXT NOT NULL DEFAULT 'lpp',                -- 'lpp' or a fieldpost.codecs entry point
            board TEXT NOT NULL DEFAULT '',
            role TEXT NOT NULL DEFAULT 'node' CHECK (role IN ('node', 'bridge')),
            firmware TEXT NOT NULL DEFAULT '',
            interval_s INTEGER NOT NULL DEFAULT 300,
            last_fcnt INTEGER NOT NULL DEFAULT -1,            -- replay floor; -1 after (re)provisioning
            created_at REAL NOT NULL,
            key_rotated_at REAL,
            last_seen REAL,
            last_rssi INTEGER,
            last_snr REAL,
            last_bridge TEXT,
            battery_v REAL,
            status TEXT                                       -- last STATUS JSON from the module
        );
        CREATE TABLE quarantine (
            device_id TEXT PRIMARY KEY,
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL,
            count INTEGER NOT NULL DEFAULT 1,
            last_rssi INTEGER,
            last_bridge TEXT,
            last_frame BLOB
        );
        """,
    ),
    (
        "0002_readings",
        """
        CREATE TABLE readings (
            id INTEGER PRIMARY KEY,
            device_id TEXT NOT NULL REFERENCES devices(id),
            fcnt INTEGER NOT NULL,
            port INTEGER NOT NULL,
            received_at REAL NOT NULL,                        -- edge clock, Unix seconds
            rx_time REAL,                                     -- bridge clock
            rssi INTEGER,
            snr REAL,
            bridge_id TEXT,
            raw BLOB NOT NULL,                                -- application payload, always kept
            decoded TEXT,                                     -- JSON list of {channel,name,value,unit}
            decode_error TEXT,
            UNIQUE (device_id, fcnt)                          -- the stable message id
        );
        CREATE INDEX readings_device_time ON readings (device_id, received_at);
        CREATE INDEX readings_time ON readings (received_at);
        """,
    ),
    (
        "0003_outbox",
        """
        -- Everything that must reach the cloud, in the order it must get there.
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            msg_id TEXT NOT NULL UNIQUE,                      -- stable id, e.g. '<device>:<fcnt>'
            kind TEXT NOT NULL CHECK (kind IN ('reading', 'alarm', 'event', 'status', 'downlink_status')),
            priority INTEGER NOT NULL DEFAULT 1,              -- 0 alarms, 1 readings, 2 bulk history
            device_id TEXT,
            ref_id INTEGER,                                   -- readings.id / alarms.id / downlinks.id
            body TEXT NOT NULL,                               -- JSON document sent to the cloud
            created_at REAL NOT NULL,
            synced_at REAL,
            attempts INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX outbox_pending ON outbox (priority, id) WHERE synced_at IS NULL;
        CREATE INDEX outbox_synced ON outbox (synced_at) WHERE synced_at IS NOT NULL;
        CREATE TABLE sync_state (
            sink TEXT PRIMARY KEY,
            last_success REAL,
            last_error TEXT,
            last_error_at REAL,
            day TEXT,                                         -- UTC date the byte count is for
            bytes_today INTEGER NOT NULL DEFAULT 0
        );
        """,
    ),
    (
        "0004_downlinks",
        """
        CREATE TABLE downlinks (
            id INTEGER PRIMARY KEY,                           -- dl_id on the air is id & 0xFFFF
            device_id TEXT NOT NULL REFERENCES devices(id),
            command TEXT NOT NULL CHECK (command IN ('set_interval', 'set_output', 'request_status', 'reboot', 'config')),
            args TEXT NOT NULL DEFAULT '{}',                  -- JSON
            source TEXT NOT NULL DEFAULT 'panel',             -- panel, cloud, rule, cli
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'sent', 'acked', 'failed', 'expired')),
            status_at REAL NOT NULL,
            sent_fcnt INTEGER,                                -- uplink fcnt whose ACK carried it
            result TEXT
        );
        CREATE INDEX downlinks_device_status ON downlinks (device_id, status);
        """,
    ),
    (
        "0005_alarms",
        """
        CREATE TABLE rules (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            definition TEXT NOT NULL,                         -- JSON, validated by edge.rules
            enabled INTEGER NOT NULL DEFAULT 1,
            source TEXT NOT NULL DEFAULT 'panel' CHECK (source IN ('config', 'panel')),
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE alarms (
            id INTEGER PRIMARY KEY,
            rule TEXT NOT NULL,
            device_id TEXT,
            severity TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
            state TEXT NOT NULL CHECK (state IN ('raised', 'acknowledged', 'cleared')),
            message TEXT NOT NULL,
            reading_id INTEGER,                               -- the reading that caused it
            value REAL,
            raised_at REAL NOT NULL,
            acknowledged_at REAL,
            acknowledged_by TEXT,
            cleared_at REAL
        );
        CREATE INDEX alarms_open ON alarms (state) WHERE state != 'cleared';
        CREATE TABLE alarm_history (                           -- every state change, kept
            id INTEGER PRIMARY KEY,
            alarm_id INTEGER NOT NULL REFERENCES alarms(id),
            state TEXT NOT NULL,
            at REAL NOT NULL,
            by TEXT,
            note TEXT
        );
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            alarm_id INTEGER NOT NULL REFERENCES alarms(id),
            channel TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
            target TEXT NOT NULL,
            body TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_error TEXT
        );
        CREATE TABLE events (                                  -- operational events: retention drops, link changes
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            device_id TEXT,
            message TEXT NOT NULL,
            detail TEXT                                       -- JSON
        );
        CREATE INDEX events_time ON events (at);
        """,
    ),
    (
        "0006_users",
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE COLLATE NOCASE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
            created_at REAL NOT NULL,
            failed_logins INTEGER NOT NULL DEFAULT 0,
            locked_until REAL,
            disabled INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE api_tokens (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,                  -- sha256 of the token; the token is shown once
            created_at REAL NOT NULL,
            last_used REAL
        );
        CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            actor TEXT NOT NULL,                              -- user name, 'cli', 'cloud', 'rule:<name>'
            action TEXT NOT NULL,
            target TEXT,
            detail TEXT                                       -- JSON
        );
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,                              -- JSON
            updated_at REAL NOT NULL,
            updated_by TEXT
        );
        """,
    ),
    (
        "0007_rules_state",
        """
        -- Rule engine memory that must survive a restart (edge.rules.state): when a condition
        -- started to hold, the alarm it raised, the previous sample for rates, the last action.
        CREATE TABLE rule_state (
            rule TEXT NOT NULL,
            subject TEXT NOT NULL,                            -- '<device>/<channel>', '<device>', port, sink
            device_id TEXT,
            pending_since REAL,                               -- condition true since, duration not reached
            pending_reading_id INTEGER,
            pending_value REAL,
            alarm_id INTEGER,                                 -- open alarm raised for this subject
            last_value REAL,                                  -- previous sample (rate of change)
            last_at REAL,
            last_action_at REAL,                              -- action cooldown
            updated_at REAL NOT NULL,
            PRIMARY KEY (rule, subject)
        );
        -- How far each alarm_history follower (the notifier) got, advanced in the same
        -- transaction as the work it did, so each state change is handled exactly once.
        CREATE TABLE alarm_cursors (
            name TEXT PRIMARY KEY,
            history_id INTEGER NOT NULL
        );
        """,
    ),
    # The lean store: each reading once, keyed by (device, fcnt); the outbox a cursor (docs/store.md).
    ("0008_store_v2", migrate_v2.upgrade),
    (
        "0009_panel_accounts",
        """
        -- Panel sessions live here, not in the cookie: logout, a password change or "sign out
        -- everywhere" deletes the rows and a copied cookie opens nothing after that.
        CREATE TABLE panel_sessions (
            id TEXT PRIMARY KEY,                              -- sha256 of the random id the cookie carries
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            created_at REAL NOT NULL,
            last_seen REAL NOT NULL,
            expires_at REAL NOT NULL,
            address TEXT NOT NULL DEFAULT '',
            user_agent TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX panel_sessions_user ON panel_sessions (user_id);
        -- Failed logins per client address and typed user name (known or not): each failure past
        -- the free ones doubles the wait, so a guesser slows down and nobody else is locked out.
        CREATE TABLE login_throttle (
            address TEXT NOT NULL,
            username TEXT NOT NULL COLLATE NOCASE,
            failures INTEGER NOT NULL,
            last_failure REAL NOT NULL,
            blocked_until REAL NOT NULL,
            PRIMARY KEY (address, username)
        ) WITHOUT ROWID;
        ALTER TABLE users ADD COLUMN totp_secret TEXT;        -- base32; NULL: no second factor
        ALTER TABLE users ADD COLUMN totp_last_step INTEGER;  -- the last code's 30 s step: no code twice
        ALTER TABLE users ADD COLUMN password_changed_at REAL;
        -- Notification targets made in the panel (kind: a transport the edge has, e.g. webhook,
        -- email, settings JSON as that transport reads them) and which alarms go to each.
        CREATE TABLE notify_targets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            kind TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}',
            enabled INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE notify_routes (
            id INTEGER PRIMARY KEY,
            target_id INTEGER NOT NULL REFERENCES notify_targets(id) ON DELETE CASCADE,
            rule TEXT,                                        -- NULL: every rule
            min_severity TEXT NOT NULL DEFAULT 'warning'
        );
        -- Hourly min/max/sum per device and value for the overview's sparklines, folded in from
        -- the readings past each device's cursor, so a page load decodes only what is new.
        CREATE TABLE panel_hourly (
            device_id TEXT NOT NULL,
            channel INTEGER NOT NULL,
            hour INTEGER NOT NULL,                            -- Unix time // 3600
            n INTEGER NOT NULL,
            total REAL NOT NULL,
            lo REAL NOT NULL,
            hi REAL NOT NULL,
            PRIMARY KEY (device_id, channel, hour)
        ) WITHOUT ROWID;
        CREATE TABLE panel_hourly_cursor (
            device_id TEXT PRIMARY KEY,
            reading_id INTEGER NOT NULL
        );
        -- The cloud backlog every few minutes (the panel's sampler), for the sync page's chart.
        CREATE TABLE panel_backlog_samples (
            at INTEGER PRIMARY KEY,                           -- Unix seconds
            readings INTEGER NOT NULL,
            outbox INTEGER NOT NULL
        );
        """,
    ),
    # LoRaWAN: the join and network server tables; devices keep their rows (edge/lorawan/schema.py).
    ("0010_lorawan", lorawan_schema.MIGRATION),
    # Devices that are not our modules: ChirpStack (LoRaWAN), UDP and CoAP (docs/sources.md).
    (
        "0011_sources",
        """
        CREATE TABLE source_devices (
            device_id TEXT PRIMARY KEY CHECK (length(device_id) = 16),  -- registered or quarantined
            source TEXT NOT NULL CHECK (source IN ('chirpstack', 'udp', 'coap')),
            application TEXT NOT NULL DEFAULT '',            -- ChirpStack application id
            name TEXT NOT NULL DEFAULT '',                   -- as ChirpStack names it
            tags TEXT NOT NULL DEFAULT '{}',                 -- ChirpStack device tags, JSON
            fcnt_base INTEGER NOT NULL DEFAULT 0,            -- stored fcnt = fcnt_base + LoRaWAN fCnt
            session TEXT NOT NULL DEFAULT ''                 -- the join (deduplicationId) that began it
        );
        CREATE TABLE source_uplinks (
            id INTEGER PRIMARY KEY,                          -- readings.id
            dedup_id TEXT NOT NULL UNIQUE,                   -- ChirpStack deduplicationId
            fcnt INTEGER NOT NULL,                           -- fCnt as the device sent it
            fport INTEGER NOT NULL,
            object TEXT,                                     -- ChirpStack's decoded object, JSON
            data BLOB                                        -- the LoRaWAN payload, when raw is the object
        );
        CREATE TABLE source_downlinks (
            downlink_id INTEGER PRIMARY KEY,                 -- downlinks.id
            queue_id TEXT NOT NULL UNIQUE,                   -- the id ChirpStack's ack/txack events name
            published_at REAL NOT NULL
        );
        """,
    ),
    (
        "0012_backups",
        """
        -- Every backup the edge made (edge.backup): scheduled (daily, weekly) or by hand. A row is
        -- written after the copy was checked (integrity_check, the row count of every table equal to
        -- the database's at the copy's snapshot); 'pruned' once the file was deleted to keep N.
        CREATE TABLE backups (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('daily', 'weekly', 'manual')),
            started_at REAL NOT NULL,
            finished_at REAL NOT NULL,
            path TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'pruned')),
            bytes INTEGER,
            row_counts TEXT,                                  -- JSON {table: rows}, checked in the copy
            error TEXT
        );
        CREATE INDEX backups_by_kind ON backups (kind, status, started_at);
        -- The same branch (issue 17, services) adds notifications through apprise: the queue's
        -- channel check is rebuilt to allow 'apprise' (its target is the apprise target's name).
        CREATE TABLE notifications_new (
            id INTEGER PRIMARY KEY,
            alarm_id INTEGER NOT NULL REFERENCES alarms(id),
            channel TEXT NOT NULL CHECK (channel IN ('webhook', 'email', 'apprise')),
            target TEXT NOT NULL,
            body TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_error TEXT
        );
        INSERT INTO notifications_new SELECT id, alarm_id, channel, target, body, status, attempts,
            next_attempt_at, last_error FROM notifications;
        DROP TABLE notifications;
        ALTER TABLE notifications_new RENAME TO notifications;
        """,
    ),
    (
        "0014_module_updates",
        """
        -- Firmware updates of modules (edge.fuota): one row per update asked for, its package
        -- on disk, the bytes the module has acknowledged (a transfer resumes from there), and
        -- how it ended. queued -> sending -> staged -> done | rolled_back | failed | cancelled.
        CREATE TABLE module_updates (
            id INTEGER PRIMARY KEY,
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            board TEXT NOT NULL,
            version TEXT NOT NULL,
            from_version TEXT,
            package TEXT NOT NULL,                            -- path of the package file
            package_sha256 TEXT NOT NULL CHECK (length(package_sha256) = 64),
            size INTEGER NOT NULL,
            sent INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN
                ('queued', 'sending', 'staged', 'done', 'rolled_back', 'failed', 'cancelled')),
            error TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE UNIQUE INDEX module_updates_one_active ON module_updates (device_id)
            WHERE state IN ('queued', 'sending', 'staged');
        """,
    ),
    (
        "0015_air_updates",
        """
        -- Updates of nodes over the air (edge/fuota/air.py) beside those of bridges over serial:
        -- how each travels, and how many air updates may be under way at once when it starts
        -- (NULL: no limit). The node keeps the bitmap of its chunks; `sent` is what it reported.
        -- Its last fragment request (chunk size, first missing chunk, bitmap of the next 16) and
        -- the last chunk put on a reading's ACK since: what the next reading's ACK carries.
        ALTER TABLE module_updates ADD COLUMN transport TEXT NOT NULL DEFAULT 'serial'
            CHECK (transport IN ('serial', 'air'));
        ALTER TABLE module_updates ADD COLUMN max_in_flight INTEGER CHECK (max_in_flight > 0);
        ALTER TABLE module_updates ADD COLUMN air_chunk INTEGER;
        ALTER TABLE module_updates ADD COLUMN air_first INTEGER;
        ALTER TABLE module_updates ADD COLUMN air_bitmap INTEGER;
        ALTER TABLE module_updates ADD COLUMN air_pushed INTEGER;
        """,
    ),
    (
        "0016_reading_age",
        """
        -- Measurement time (issue 13 item 9): how long a reading waited on its module before it
        -- was sent (docs/radio.md 0.9), in seconds; NULL for a fresh one and for sources that
        -- carry no age. Measured time = received_ms - 1000 * age_s. A NULL costs one header
        -- byte per row; rows stored before read as NULL (measured = received, as they were).
        ALTER TABLE readings ADD COLUMN age_s INTEGER;
        -- the view for people and ad-hoc SQL (0008's) with the measured time and the age
        DROP VIEW IF EXISTS reading_list;
        CREATE VIEW reading_list AS
        SELECT r.id AS id, d.id AS device_id, r.id & 4294967295 AS fcnt,
               (r.received_ms - 1000 * coalesce(r.age_s, 0)) / 1000.0 AS measured_at,
               r.received_ms / 1000.0 AS received_at, r.age_s AS age_s,
               r.port AS port, r.rssi AS rssi, r.snr_q / 4.0 AS snr, b.id AS bridge_id, r.raw AS raw
        FROM readings AS r
        JOIN device_numbers AS d ON d.n = r.id >> 32
        LEFT JOIN device_numbers AS b ON b.n = r.bridge;
        """,
    ),
    (
        "0017_air_energy",
        """
        -- The energy pace of an update over the air (edge/fuota/energy.py, [updates]
        -- energy_mah_day): the node may send `air_burst` fragment requests at once, then one
        -- every `air_gap_s` seconds. NULL: no pace (a board without datasheet currents, no
        -- allowance, or firmware that predates it).
        ALTER TABLE module_updates ADD COLUMN air_gap_s INTEGER CHECK (air_gap_s BETWEEN 1 AND 65535);
        ALTER TABLE module_updates ADD COLUMN air_burst INTEGER CHECK (air_burst BETWEEN 1 AND 65535);
        """,
    ),
]


def _ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    _ensure_table(conn)
    return [row[0] for row in conn.execute("SELECT name FROM migrations ORDER BY name")]


def migrate(conn: sqlite3.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet recorded; return their names."""
    migrations = MIGRATIONS if migrations is None else migrations
    done = set(applied_migrations(conn))
    applied = []
    for name, step in migrations:
        if name in done:
            continue
        with transaction(conn):
            if callable(step):
                step(conn)
            else:
                run_script(conn, step)
            conn.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
        applied.append(name)
    return applied
