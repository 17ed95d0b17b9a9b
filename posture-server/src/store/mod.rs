//! Storage: one [`Store`] trait, the interface every handler and admin command uses,
//! with two implementations chosen by the URL:
//!
//! - [`SqliteStore`] (`sqlite://PATH`, embedded, the default): WAL, `synchronous=FULL`,
//!   and one writer task that commits the evidence waiting at that moment in
//!   one `BEGIN IMMEDIATE` transaction (group commit: one fsync for many, each caller
//!   answered only after the commit).
//! - [`PostgresStore`] (`postgres://...`, shared by several stateless replicas): the
//!   evidence waiting at a moment recorded together by one server-side function, in one
//!   statement and one commit (group commit again: row locks on the devices, a refusal
//!   answered per piece of evidence, each caller answered after the commit).
//!
//! Each has its own versioned migrations ([`migrations`]); what is truly identical (row
//! decoding) is shared in `rows`. The same test suite runs against both.
//!
//! Everything a replica must agree on lives in the database: spent nonces and the nonce
//! key, pending enrollments, tokens, sessions. Times are seconds since the Unix epoch.

pub mod migrations;
mod postgres;
mod rows;
mod sqlite;

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// How long a spent nonce is kept after its expiry. Past its expiry a nonce is refused
/// by its own check, before the database is asked; the margin covers replicas whose
/// clocks disagree (one purging by a clock ahead of another that still accepts it).
pub const SPENT_NONCE_MARGIN: i64 = 600;

/// A boxed future of a store call (the trait stays object-safe).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or failed (the caller answers 503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A row that must be unique already exists.
    #[error("already exists")]
    Conflict,
    /// Stored data that cannot be read back (a bug or a tampered database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database URL is not one this server supports.
    #[error("unsupported database URL {0:?} (use sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
    /// A migration failed.
    #[error("migration {version}: {message}")]
    Migration {
        /// The migration that failed.
        version: i64,
        /// Why.
        message: String,
    },
}

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Read decisions and devices (an IdP or access proxy).
    Reader,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reader => "reader",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Role::Admin),
            "reader" => Some(Role::Reader),
            _ => None,
        }
    }
}

/// The kind of a bearer credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A long-lived API token (`Authorization: Bearer`).
    Api,
    /// A dashboard session (cookie).
    Session,
    /// A one-time dashboard login link.
    Login,
}

impl CredentialKind {
    fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Api => "api",
            CredentialKind::Session => "session",
            CredentialKind::Login => "login",
        }
    }
}

/// A bearer credential as stored: only the SHA-256 of the secret.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// What it is.
    pub kind: CredentialKind,
    /// What it may do.
    pub role: Role,
    /// A label for people.
    pub name: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
}

/// An enrollment token as listed (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct EnrollmentToken {
    /// Its id (the first characters of its hash).
    pub id: String,
    /// The person the enrolled device will belong to.
    pub owner: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// When it was spent, if it was.
    pub used_at: Option<i64>,
}

/// A device to record at the end of enrollment.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// The device key's id (RFC 7638 thumbprint): the device's id on this server.
    pub id: String,
    /// Its owner (from the enrollment token).
    pub owner: String,
    /// `tpm` or `software`.
    pub key_kind: String,
    /// The enrolled TPM device record (JSON) or the software key's JWK.
    pub key_record: String,
    /// `ca`, `unverified`, or `none` for software keys.
    pub ek_trust: String,
    /// What enrollment proved: `tpm`, `tpm-unverified` or `software`.
    pub key_assurance: String,
    /// Enrollment time.
    pub enrolled_at: i64,
    /// A random id of this enrollment: a device deleted and enrolled again with the same
    /// key gets a new one, so a replica's cached key record is never used for it.
    pub enrollment: String,
}

/// What verifying a device's evidence needs (no report, no decision).
#[derive(Debug, Clone)]
pub struct DeviceKey {
    /// `tpm` or `software`.
    pub key_kind: String,
    /// The enrolled TPM device record (JSON) or the software key's JWK.
    pub key_record: String,
    /// The enrollment this key record belongs to ([`NewDevice::enrollment`]).
    pub enrollment: String,
    /// Disabled by an admin.
    pub disabled: bool,
}

/// A device with its latest state.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    /// Its id (device key thumbprint).
    pub id: String,
    /// Owner.
    pub owner: String,
    /// `tpm` or `software`.
    pub key_kind: String,
    /// The key record (not serialized: internal).
    #[serde(skip)]
    pub key_record: String,
    /// `ca`, `unverified` or `none`.
    pub ek_trust: String,
    /// Proven key assurance.
    pub key_assurance: String,
    /// Enrollment time.
    pub enrolled_at: i64,
    /// Disabled by an admin: its evidence is refused and its decision is deny.
    pub disabled: bool,
    /// Host name from the latest report.
    pub host: Option<String>,
    /// When the latest evidence arrived.
    pub last_seen: Option<i64>,
    /// `iat` of the latest evidence.
    pub evidence_iat: Option<i64>,
    /// `compliant`, `noncompliant`, or `none` before any evidence.
    pub status: String,
    /// Failing finding ids of the latest report (comma-free list).
    pub failing: Vec<String>,
    /// The latest policy decision (JSON), not serialized in listings.
    #[serde(skip)]
    pub decision_json: Option<String>,
    /// The latest report (JSON), not serialized in listings.
    #[serde(skip)]
    pub report_json: Option<String>,
}

/// Verified evidence to record, atomically with spending its nonce.
#[derive(Debug, Clone)]
pub struct Ingest {
    /// The device.
    pub device_id: String,
    /// The enrollment whose key record verified it: refused as [`IngestRefusal::Enrollment`]
    /// when the device was enrolled again meanwhile.
    pub enrollment: String,
    /// The nonce it is bound to, already checked ([`crate::nonce::NonceKey::check`]):
    /// recorded as spent here, refused when it was spent before.
    pub nonce: String,
    /// That nonce's expiry (spent nonces are kept until then).
    pub nonce_expires_at: i64,
    /// Its `jti` (refused when seen before).
    pub jti: String,
    /// Its `iat`.
    pub iat: i64,
    /// Arrival time.
    pub received_at: i64,
    /// `compliant` or `noncompliant`.
    pub status: String,
    /// Failing finding ids.
    pub failing: Vec<String>,
    /// Host name.
    pub host: String,
    /// Hardware serial number from the report, where the device could read one.
    pub serial_number: Option<String>,
    /// The decision (JSON).
    pub decision_json: String,
    /// The report (JSON).
    pub report_json: String,
}

/// A device found by its hardware identity, with the identity it was found by.
#[derive(Debug, Clone)]
pub struct IdentifiedDevice {
    /// The device (decision columns, as [`Store::device_state`]).
    pub device: Device,
    /// Serial number of its latest report.
    pub serial_number: Option<String>,
}

/// Why evidence was not recorded (the device and the nonce are checked in the transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestRefusal {
    /// The nonce was spent before.
    Nonce,
    /// This `jti` was already recorded: a replay.
    Replay,
    /// The device is unknown (deleted meanwhile) or disabled.
    Device,
    /// The device was deleted and enrolled again since its key record was read: verify
    /// again with the current one.
    Enrollment,
}

/// One piece of evidence in a device's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Arrival time.
    pub received_at: i64,
    /// `iat`.
    pub iat: i64,
    /// `jti`.
    pub jti: String,
    /// `compliant` or `noncompliant`.
    pub status: String,
    /// Failing finding ids.
    pub failing: Vec<String>,
}

/// A change of a device's compliance.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// When.
    pub at: i64,
    /// Before (`none` for the first evidence).
    pub from: String,
    /// After.
    pub to: String,
}

/// The connection pool under a store, for the parts that keep their own tables and SQL
/// (the Shared Signals transmitter, [`crate::ssf`]): their SQL is written once with `$N`
/// parameters, which both databases accept.
#[derive(Debug, Clone)]
pub enum Pool {
    /// SQLite (reads and rare writes beside the evidence writer, under `busy_timeout`).
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL.
    Postgres(sqlx::PgPool),
}

/// The storage interface.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which database this is.
    fn backend(&self) -> Backend;
    /// The connection pool (see [`Pool`]).
    fn pool(&self) -> Pool;
    /// This server's id (made once, shared by replicas): part of the evidence audience.
    fn server_id(&self) -> StoreFuture<'_, String>;
    /// Whether the database answers.
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Records a bearer credential.
    fn insert_credential<'a>(&'a self, credential: &'a NewCredential) -> StoreFuture<'a, ()>;
    /// The role of a valid API token or session with this hash.
    fn credential_role<'a>(
        &'a self,
        hash: &'a str,
        kind: CredentialKind,
        now: i64,
    ) -> StoreFuture<'a, Option<Role>>;
    /// Spends a one-time login code; its role when it was valid.
    fn take_login<'a>(&'a self, hash: &'a str, now: i64) -> StoreFuture<'a, Option<Role>>;
    /// How many admin API tokens exist (the first start makes one).
    fn count_admin_tokens(&self) -> StoreFuture<'_, i64>;

    /// Records an enrollment token.
    fn insert_enrollment_token<'a>(
        &'a self,
        hash: &'a str,
        owner: &'a str,
        created_at: i64,
        expires_at: i64,
    ) -> StoreFuture<'a, ()>;
    /// Every enrollment token.
    fn enrollment_tokens(&self) -> StoreFuture<'_, Vec<EnrollmentToken>>;
    /// Spends a valid, unspent token: its owner, or `None` (unknown, expired or spent).
    fn spend_enrollment_token<'a>(
        &'a self,
        hash: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<String>>;

    /// Keeps a TPM enrollment between challenge and response.
    fn insert_pending<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
        pending_json: &'a str,
        expires_at: i64,
    ) -> StoreFuture<'a, ()>;
    /// Takes (and deletes) a pending enrollment: `(owner, pending JSON)`.
    fn take_pending<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<(String, String)>>;

    /// The key challenge nonces are made with ([`crate::nonce`]): made at the first
    /// migration, the same for every replica.
    fn nonce_key(&self) -> StoreFuture<'_, String>;
    /// Records a nonce (already checked: [`crate::nonce::NonceKey::check`]) as spent
    /// outside ingestion (software enrollment's proof of possession, device certificate
    /// requests); `false` when it was spent before.
    fn spend_nonce<'a>(&'a self, nonce: &'a str, expires_at: i64) -> StoreFuture<'a, bool>;

    /// Records an enrolled device; [`StoreError::Conflict`] when the key is enrolled already.
    fn insert_device<'a>(&'a self, device: &'a NewDevice) -> StoreFuture<'a, ()>;
    /// One device.
    fn device<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Device>>;
    /// What verifying a device's evidence needs.
    fn device_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<DeviceKey>>;
    /// One device without its key record and report (what a decision needs).
    fn device_state<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Device>>;
    /// Every device, most recently seen first, without key records, decisions and
    /// reports (a listing of a large fleet stays small).
    fn devices(&self) -> StoreFuture<'_, Vec<Device>>;
    /// Every device whose latest report has one of `serials` as its serial number, or
    /// one of `hosts` (lower-case) as its host name compared in lower case. Both lists
    /// are at most a few thousand entries.
    fn devices_by_identity<'a>(
        &'a self,
        serials: &'a [String],
        hosts: &'a [String],
    ) -> StoreFuture<'a, Vec<IdentifiedDevice>>;
    /// Disables or enables a device; whether it exists.
    fn set_disabled<'a>(&'a self, id: &'a str, disabled: bool) -> StoreFuture<'a, bool>;
    /// Deletes a device and its history; whether it existed.
    fn delete_device<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;

    /// Records verified evidence in one transaction: records the nonce as spent (refused
    /// when it was), refuses a seen `jti`, appends the history, updates the device, notes a compliance change. When
    /// this returns `Ok(Ok(()))` the evidence is durable.
    fn ingest(&self, ingest: Ingest) -> StoreFuture<'_, Result<(), IngestRefusal>>;
    /// The latest `limit` history entries of a device, newest first.
    fn history<'a>(&'a self, id: &'a str, limit: i64) -> StoreFuture<'a, Vec<HistoryEntry>>;
    /// The latest `limit` compliance changes of a device, newest first.
    fn changes<'a>(&'a self, id: &'a str, limit: i64) -> StoreFuture<'a, Vec<Change>>;
    /// Deletes history older than `history_before`, spent nonces expired for
    /// [`SPENT_NONCE_MARGIN`], and expired pending enrollments and sessions. Returns the number of history rows removed.
    fn purge(&self, history_before: i64, now: i64) -> StoreFuture<'_, u64>;
}

/// Opens the store for `url` (`sqlite://PATH` or `postgres://...`) and runs its
/// migrations.
pub async fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Box::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Box::new(PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
