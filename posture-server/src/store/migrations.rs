//! Versioned schema migrations, one list per database. A migration is never edited once
//! released: a change is a new version. Each runs in a transaction and is recorded in
//! `schema_migrations`; on PostgreSQL, replicas starting together serialize on an
//! advisory lock so only one migrates.

/// `(version, statements)` for SQLite.
pub const SQLITE: &[(i64, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE credentials (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, role TEXT NOT NULL,
            name TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER)",
        "CREATE TABLE enrollment_tokens (hash TEXT PRIMARY KEY, owner TEXT NOT NULL,
            created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, used_at INTEGER)",
        "CREATE TABLE pending_enrollments (id TEXT PRIMARY KEY, owner TEXT NOT NULL,
            pending TEXT NOT NULL, expires_at INTEGER NOT NULL)",
        "CREATE TABLE nonces (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)",
        "CREATE TABLE devices (id TEXT PRIMARY KEY, owner TEXT NOT NULL, key_kind TEXT NOT NULL,
            key_record TEXT NOT NULL, ek_trust TEXT NOT NULL, key_assurance TEXT NOT NULL,
            enrolled_at INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, host TEXT,
            last_seen INTEGER, evidence_iat INTEGER, status TEXT NOT NULL DEFAULT 'none',
            failing TEXT NOT NULL DEFAULT '', decision TEXT, report TEXT)",
        "CREATE TABLE evidence (id INTEGER PRIMARY KEY AUTOINCREMENT,
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            jti TEXT NOT NULL, iat INTEGER NOT NULL, received_at INTEGER NOT NULL,
            status TEXT NOT NULL, failing TEXT NOT NULL, UNIQUE (device_id, jti))",
        "CREATE INDEX evidence_received ON evidence (received_at)",
        "CREATE TABLE changes (id INTEGER PRIMARY KEY AUTOINCREMENT,
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            at INTEGER NOT NULL, from_status TEXT NOT NULL, to_status TEXT NOT NULL)",
        "CREATE INDEX changes_device ON changes (device_id, id)",
    ],
),
(
    2,
    &[
        // Which enrollment a device row is (a replica's cached key record must match).
        "ALTER TABLE devices ADD COLUMN enrollment TEXT NOT NULL DEFAULT ''",
        // A device's history, newest first, without scanning the (device_id, jti) index.
        "CREATE INDEX evidence_device ON evidence (device_id, id)",
    ],
),
(
    // 20: Shared Signals (SSF/CAEP) streams and their durable outbox, the compliance last
    // announced for each device, the changes already turned into events, and the
    // Tailscale queue (see `crate::ssf`).
    20,
    SSF_SQLITE,
),
(
    // Versions are not contiguous: each integration owns a range (10, 20, 30, 40, 50); the
    // runner applies every listed version it has not recorded, in list order.
    30,
    &[
        // The hardware serial number of the latest report (Cloudflare device mapping).
        "ALTER TABLE devices ADD COLUMN serial TEXT",
        "CREATE INDEX devices_serial ON devices (serial)",
        "CREATE INDEX devices_host ON devices (lower(host))",
    ],
),
(
    // 50: stateless challenges (`crate::nonce`): a nonce is recorded only when evidence
    // spends it. Keyed by expiry first, so that new rows go to the end of the tree and
    // the purge deletes a range from its start; the nonce itself carries its expiry
    // under the MAC, so (expires_at, nonce) is unique exactly when the nonce is. The
    // `nonces` table of version 1 is no longer written (purged as before).
    50,
    &["CREATE TABLE spent_nonces (expires_at INTEGER NOT NULL, nonce TEXT NOT NULL,
        PRIMARY KEY (expires_at, nonce)) WITHOUT ROWID"],
)];

/// `(version, statements)` for PostgreSQL.
pub const POSTGRES: &[(i64, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE credentials (hash TEXT PRIMARY KEY, kind TEXT NOT NULL, role TEXT NOT NULL,
            name TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT)",
        "CREATE TABLE enrollment_tokens (hash TEXT PRIMARY KEY, owner TEXT NOT NULL,
            created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, used_at BIGINT)",
        "CREATE TABLE pending_enrollments (id TEXT PRIMARY KEY, owner TEXT NOT NULL,
            pending TEXT NOT NULL, expires_at BIGINT NOT NULL)",
        "CREATE TABLE nonces (nonce TEXT PRIMARY KEY, expires_at BIGINT NOT NULL)",
        "CREATE TABLE devices (id TEXT PRIMARY KEY, owner TEXT NOT NULL, key_kind TEXT NOT NULL,
            key_record TEXT NOT NULL, ek_trust TEXT NOT NULL, key_assurance TEXT NOT NULL,
            enrolled_at BIGINT NOT NULL, disabled BIGINT NOT NULL DEFAULT 0, host TEXT,
            last_seen BIGINT, evidence_iat BIGINT, status TEXT NOT NULL DEFAULT 'none',
            failing TEXT NOT NULL DEFAULT '', decision TEXT, report TEXT)",
        "CREATE TABLE evidence (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            jti TEXT NOT NULL, iat BIGINT NOT NULL, received_at BIGINT NOT NULL,
            status TEXT NOT NULL, failing TEXT NOT NULL, UNIQUE (device_id, jti))",
        "CREATE INDEX evidence_received ON evidence (received_at)",
        "CREATE INDEX evidence_device ON evidence (device_id, id)",
        "CREATE TABLE changes (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
            at BIGINT NOT NULL, from_status TEXT NOT NULL, to_status TEXT NOT NULL)",
        "CREATE INDEX changes_device ON changes (device_id, id)",
    ],
),
(
    2,
    &[
        "ALTER TABLE devices ADD COLUMN enrollment TEXT NOT NULL DEFAULT ''",
        // Records verified evidence in one round trip, atomically (the statement is its
        // own transaction): locks the device row (concurrent evidence of one device
        // records its compliance changes in order), spends the nonce, appends the
        // history, updates the device, notes a change, and tells every replica
        // (`posture_devices`) that the device changed. Refusals are raised with their own
        // SQLSTATE so that nothing of a refused piece of evidence stays, its nonce neither:
        // PTDEV unknown or disabled device, PTENR enrolled again meanwhile, PTNON nonce
        // unknown/expired/spent, PTREP `jti` seen (a replay).
        "CREATE FUNCTION posture_ingest(p_device TEXT, p_enrollment TEXT, p_nonce TEXT,
            p_jti TEXT, p_iat BIGINT, p_received BIGINT, p_status TEXT, p_failing TEXT,
            p_host TEXT, p_decision TEXT, p_report TEXT) RETURNS VOID
        LANGUAGE plpgsql AS $$
        DECLARE
            v_status TEXT;
            v_disabled BIGINT;
            v_enrollment TEXT;
        BEGIN
            SELECT status, disabled, enrollment INTO v_status, v_disabled, v_enrollment
                FROM devices WHERE id = p_device FOR UPDATE;
            IF NOT FOUND OR v_disabled <> 0 THEN
                RAISE EXCEPTION 'device refused' USING ERRCODE = 'PTDEV';
            END IF;
            IF v_enrollment <> p_enrollment THEN
                RAISE EXCEPTION 'enrolled again' USING ERRCODE = 'PTENR';
            END IF;
            DELETE FROM nonces WHERE nonce = p_nonce AND expires_at >= p_received;
            IF NOT FOUND THEN
                IF EXISTS (SELECT 1 FROM evidence WHERE device_id = p_device AND jti = p_jti) THEN
                    RAISE EXCEPTION 'replay' USING ERRCODE = 'PTREP';
                END IF;
                RAISE EXCEPTION 'nonce refused' USING ERRCODE = 'PTNON';
            END IF;
            INSERT INTO evidence (device_id, jti, iat, received_at, status, failing)
                VALUES (p_device, p_jti, p_iat, p_received, p_status, p_failing)
                ON CONFLICT (device_id, jti) DO NOTHING;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'replay' USING ERRCODE = 'PTREP';
            END IF;
            UPDATE devices SET host = p_host, last_seen = p_received, evidence_iat = p_iat,
                status = p_status, failing = p_failing, decision = p_decision,
                report = p_report WHERE id = p_device;
            IF v_status <> p_status THEN
                INSERT INTO changes (device_id, at, from_status, to_status)
                    VALUES (p_device, p_received, v_status, p_status);
            END IF;
            PERFORM pg_notify('posture_devices', p_device);
        END
        $$",
    ],
),
(
    20,
    SSF_POSTGRES,
),
(
    30,
    &[
        "ALTER TABLE devices ADD COLUMN serial TEXT",
        "CREATE INDEX devices_serial ON devices (serial)",
        "CREATE INDEX devices_host ON devices (lower(host))",
    ],
),
(
    // The runner applies whatever is missing, in this list's order, and does not mind
    // gaps between versions.
    40,
    &[
        // Group commit: several pieces of verified evidence recorded in one statement,
        // so in one transaction, one round trip and one WAL flush (and one pass through
        // the lock PostgreSQL serializes NOTIFYing commits on). The elements of the
        // arrays are the arguments of migration 2's `posture_ingest` and the serial number
        // (migration 30), one piece of evidence each; the server sends them sorted by
        // device id, so that concurrent batches lock device rows in the same order. Each
        // piece does what `posture_ingest` does, in order
        // (a device's compliance changes are noted in the order its evidence arrived),
        // but a refusal is an answer, not an exception: every refusal is decided before
        // anything of that piece is written, so a refused piece leaves nothing — its
        // nonce stays unspent — and the others are still recorded. The answer has one
        // element per piece: `ok`, or `device` (unknown or disabled), `enrollment`
        // (enrolled again meanwhile), `replay` (`jti` seen), `nonce` (unknown, expired
        // or spent).
        "CREATE FUNCTION posture_ingest_batch(p_device TEXT[], p_enrollment TEXT[],
            p_nonce TEXT[], p_jti TEXT[], p_iat BIGINT[], p_received BIGINT[],
            p_status TEXT[], p_failing TEXT[], p_host TEXT[], p_decision TEXT[],
            p_report TEXT[], p_serial TEXT[]) RETURNS TEXT[]
        LANGUAGE plpgsql AS $$
        DECLARE
            v_out TEXT[] := '{}';
            v_status TEXT;
            v_disabled BIGINT;
            v_enrollment TEXT;
            v_expires BIGINT;
        BEGIN
            FOR i IN 1 .. coalesce(array_length(p_device, 1), 0) LOOP
                SELECT status, disabled, enrollment INTO v_status, v_disabled, v_enrollment
                    FROM devices WHERE id = p_device[i] FOR UPDATE;
                IF NOT FOUND OR v_disabled <> 0 THEN
                    v_out := v_out || 'device'::TEXT;
                    CONTINUE;
                END IF;
                IF v_enrollment <> p_enrollment[i] THEN
                    v_out := v_out || 'enrollment'::TEXT;
                    CONTINUE;
                END IF;
                -- Evidence of this device is only written under its row lock, held
                -- here: what this sees stays true until the commit.
                IF EXISTS (SELECT 1 FROM evidence
                           WHERE device_id = p_device[i] AND jti = p_jti[i]) THEN
                    v_out := v_out || 'replay'::TEXT;
                    CONTINUE;
                END IF;
                DELETE FROM nonces WHERE nonce = p_nonce[i] AND expires_at >= p_received[i]
                    RETURNING expires_at INTO v_expires;
                IF NOT FOUND THEN
                    v_out := v_out || 'nonce'::TEXT;
                    CONTINUE;
                END IF;
                INSERT INTO evidence (device_id, jti, iat, received_at, status, failing)
                    VALUES (p_device[i], p_jti[i], p_iat[i], p_received[i], p_status[i],
                            p_failing[i])
                    ON CONFLICT (device_id, jti) DO NOTHING;
                IF NOT FOUND THEN
                    -- Not reachable under the row lock; should it happen, the nonce is
                    -- given back so that the refused piece still leaves nothing.
                    INSERT INTO nonces (nonce, expires_at) VALUES (p_nonce[i], v_expires);
                    v_out := v_out || 'replay'::TEXT;
                    CONTINUE;
                END IF;
                UPDATE devices SET host = p_host[i], serial = p_serial[i],
                    last_seen = p_received[i],
                    evidence_iat = p_iat[i], status = p_status[i], failing = p_failing[i],
                    decision = p_decision[i], report = p_report[i]
                    WHERE id = p_device[i];
                IF v_status <> p_status[i] THEN
                    INSERT INTO changes (device_id, at, from_status, to_status)
                        VALUES (p_device[i], p_received[i], v_status, p_status[i]);
                END IF;
                PERFORM pg_notify('posture_devices', p_device[i]);
                v_out := v_out || 'ok'::TEXT;
            END LOOP;
            RETURN v_out;
        END
        $$",
    ],
),
(
    // 50: stateless challenges (`crate::nonce`), as on SQLite: a nonce is recorded only
    // when evidence spends it, in `spent_nonces` (keyed by expiry first: inserts at the
    // end of the index, the purge takes a range from its start). `posture_record_evidence`
    // is migration 40's `posture_ingest_batch` with that one difference — the nonce is
    // inserted as spent (refused when it is there already) instead of deleted from
    // `nonces`, and its expiry comes as one more array (`p_nonce_expires`). Migration
    // 40's function and the `nonces` table stay for servers of the previous version
    // during a rolling upgrade; nothing of this version uses them.
    50,
    &[
        "CREATE TABLE spent_nonces (expires_at BIGINT NOT NULL, nonce TEXT NOT NULL,
            PRIMARY KEY (expires_at, nonce))",
        "CREATE FUNCTION posture_record_evidence(p_device TEXT[], p_enrollment TEXT[],
            p_nonce TEXT[], p_nonce_expires BIGINT[], p_jti TEXT[], p_iat BIGINT[],
            p_received BIGINT[], p_status TEXT[], p_failing TEXT[], p_host TEXT[],
            p_decision TEXT[], p_report TEXT[], p_serial TEXT[]) RETURNS TEXT[]
        LANGUAGE plpgsql AS $$
        DECLARE
            v_out TEXT[] := '{}';
            v_status TEXT;
            v_disabled BIGINT;
            v_enrollment TEXT;
        BEGIN
            FOR i IN 1 .. coalesce(array_length(p_device, 1), 0) LOOP
                SELECT status, disabled, enrollment INTO v_status, v_disabled, v_enrollment
                    FROM devices WHERE id = p_device[i] FOR UPDATE;
                IF NOT FOUND OR v_disabled <> 0 THEN
                    v_out := v_out || 'device'::TEXT;
                    CONTINUE;
                END IF;
                IF v_enrollment <> p_enrollment[i] THEN
                    v_out := v_out || 'enrollment'::TEXT;
                    CONTINUE;
                END IF;
                -- Evidence of this device is only written under its row lock, held
                -- here: what this sees stays true until the commit.
                IF EXISTS (SELECT 1 FROM evidence
                           WHERE device_id = p_device[i] AND jti = p_jti[i]) THEN
                    v_out := v_out || 'replay'::TEXT;
                    CONTINUE;
                END IF;
                -- Another transaction inserting the same nonce makes this wait for its
                -- end: spent if it commits, ours if it rolls back.
                INSERT INTO spent_nonces (expires_at, nonce)
                    VALUES (p_nonce_expires[i], p_nonce[i]) ON CONFLICT DO NOTHING;
                IF NOT FOUND THEN
                    v_out := v_out || 'nonce'::TEXT;
                    CONTINUE;
                END IF;
                INSERT INTO evidence (device_id, jti, iat, received_at, status, failing)
                    VALUES (p_device[i], p_jti[i], p_iat[i], p_received[i], p_status[i],
                            p_failing[i])
                    ON CONFLICT (device_id, jti) DO NOTHING;
                IF NOT FOUND THEN
                    -- Not reachable under the row lock; should it happen, the nonce is
                    -- given back so that the refused piece still leaves nothing.
                    DELETE FROM spent_nonces
                        WHERE expires_at = p_nonce_expires[i] AND nonce = p_nonce[i];
                    v_out := v_out || 'replay'::TEXT;
                    CONTINUE;
                END IF;
                UPDATE devices SET host = p_host[i], serial = p_serial[i],
                    last_seen = p_received[i],
                    evidence_iat = p_iat[i], status = p_status[i], failing = p_failing[i],
                    decision = p_decision[i], report = p_report[i]
                    WHERE id = p_device[i];
                IF v_status <> p_status[i] THEN
                    INSERT INTO changes (device_id, at, from_status, to_status)
                        VALUES (p_device[i], p_received[i], v_status, p_status[i]);
                END IF;
                PERFORM pg_notify('posture_devices', p_device[i]);
                v_out := v_out || 'ok'::TEXT;
            END LOOP;
            RETURN v_out;
        END
        $$",
    ],
)];

/// Version 20 on SQLite. No foreign key to `devices`: a deleted device's last
/// announcement must outlive it (its deletion is itself announced).
const SSF_SQLITE: &[&str] = &[
    "CREATE TABLE ssf_streams (id TEXT PRIMARY KEY, method TEXT NOT NULL, config TEXT NOT NULL,
        status TEXT NOT NULL, reason TEXT, created_at INTEGER NOT NULL,
        last_verification INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE ssf_excluded (stream_id TEXT NOT NULL REFERENCES ssf_streams(id) ON DELETE CASCADE,
        subject TEXT NOT NULL, PRIMARY KEY (stream_id, subject))",
    "CREATE TABLE ssf_events (id INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL REFERENCES ssf_streams(id) ON DELETE CASCADE,
        jti TEXT NOT NULL, set_jwt TEXT NOT NULL, created_at INTEGER NOT NULL,
        next_attempt INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
        UNIQUE (stream_id, jti))",
    "CREATE INDEX ssf_events_due ON ssf_events (next_attempt)",
    "CREATE TABLE ssf_reported (device_id TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT,
        assurance TEXT NOT NULL, status TEXT NOT NULL, at INTEGER NOT NULL,
        refreshed_at INTEGER NOT NULL)",
    "CREATE TABLE ssf_consumed (change_id INTEGER PRIMARY KEY, consumed_at INTEGER NOT NULL)",
    "CREATE TABLE tailscale_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id TEXT NOT NULL,
        host TEXT, compliant INTEGER NOT NULL, assurance TEXT NOT NULL,
        created_at INTEGER NOT NULL, next_attempt INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT)",
    // Changes recorded before this version are history, not news: start after them.
    "INSERT INTO meta (key, value) SELECT 'ssf_watermark', CAST(COALESCE(MAX(id), 0) AS TEXT)
        FROM changes",
];

/// Version 20 on PostgreSQL (the same tables).
const SSF_POSTGRES: &[&str] = &[
    "CREATE TABLE ssf_streams (id TEXT PRIMARY KEY, method TEXT NOT NULL, config TEXT NOT NULL,
        status TEXT NOT NULL, reason TEXT, created_at BIGINT NOT NULL,
        last_verification BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE ssf_excluded (stream_id TEXT NOT NULL REFERENCES ssf_streams(id) ON DELETE CASCADE,
        subject TEXT NOT NULL, PRIMARY KEY (stream_id, subject))",
    "CREATE TABLE ssf_events (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        stream_id TEXT NOT NULL REFERENCES ssf_streams(id) ON DELETE CASCADE,
        jti TEXT NOT NULL, set_jwt TEXT NOT NULL, created_at BIGINT NOT NULL,
        next_attempt BIGINT NOT NULL, attempts BIGINT NOT NULL DEFAULT 0, last_error TEXT,
        UNIQUE (stream_id, jti))",
    "CREATE INDEX ssf_events_due ON ssf_events (next_attempt)",
    "CREATE TABLE ssf_reported (device_id TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT,
        assurance TEXT NOT NULL, status TEXT NOT NULL, at BIGINT NOT NULL,
        refreshed_at BIGINT NOT NULL)",
    "CREATE TABLE ssf_consumed (change_id BIGINT PRIMARY KEY, consumed_at BIGINT NOT NULL)",
    "CREATE TABLE tailscale_queue (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        device_id TEXT NOT NULL, host TEXT, compliant BIGINT NOT NULL, assurance TEXT NOT NULL,
        created_at BIGINT NOT NULL, next_attempt BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0, last_error TEXT)",
    "INSERT INTO meta (key, value) SELECT 'ssf_watermark', CAST(COALESCE(MAX(id), 0) AS TEXT)
        FROM changes",
];
