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
)];
