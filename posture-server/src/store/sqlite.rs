//! [`Store`] on an embedded SQLite database: WAL, `synchronous=FULL`, foreign keys on.
//!
//! SQLite has one writer at a time and `synchronous=FULL` costs one fsync per commit, so
//! the hot write — evidence, with the nonce it spends — goes to one writer thread. It takes
//! whatever is waiting when it is free (up to [`MAX_BATCH`]), runs it in one
//! `BEGIN IMMEDIATE` transaction, commits once, and only then answers each caller: group
//! commit, without a timer and without acknowledging anything before it is on disk.
//! The writer calls SQLite directly (rusqlite, the same linked SQLite as sqlx's) on its
//! own thread: a statement through sqlx's SQLite driver is two thread switches, which
//! profiling showed to cost more CPU than the statements themselves.
//! Reads and the rare admin writes use a small sqlx pool beside it (WAL readers never
//! wait for the writer; writers wait for each other under `busy_timeout`).

use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor as _, Row as _};
use tokio::sync::{mpsc, oneshot};

use super::migrations;
use super::rows::{
    db_err, device_from_row, split_list, Columns, DEVICE_ALL, DEVICE_LISTING, DEVICE_STATE,
};
use super::{
    Backend, Change, CredentialKind, Device, DeviceKey, EnrollmentToken, HistoryEntry,
    IdentifiedDevice, Ingest, IngestRefusal, NewCredential, NewDevice, Role, Store, StoreError,
    StoreFuture,
};

/// History rows deleted per transaction when purging.
const PURGE_BATCH: i64 = 5000;

/// How long a request waits for a database connection before it is answered 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The most writes committed together: bounds one transaction's time and memory.
pub const MAX_BATCH: usize = 256;

/// Writes waiting for the writer; beyond this, callers wait to enqueue (backpressure).
const QUEUE: usize = 4096;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write for the group-commit writer: a piece of evidence.
struct Write {
    // Boxed: the queue's slots stay small.
    ingest: Box<Ingest>,
    reply: Reply<Result<(), IngestRefusal>>,
}

/// The SQLite store (see the module documentation).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writes: mpsc::Sender<Write>,
    readers: std::sync::Arc<Readers>,
}

/// Idle reader connections kept beyond the ones in use.
const IDLE_READERS: usize = 4;

/// Connections for the read on the decision path ([`Store::device_state`]), called
/// directly on the request's thread: a read by primary key takes microseconds, while
/// through sqlx's SQLite driver it is two thread switches, and on a busy machine those
/// made the decision latency's tail. WAL readers never wait for the writer.
struct Readers {
    path: PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Readers({})", self.path.display())
    }
}

impl Readers {
    /// Runs `read` on an idle connection (or a new one).
    fn read<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = rusqlite::Connection::open(&self.path).map_err(sq_err)?;
                conn.busy_timeout(ACQUIRE_TIMEOUT).map_err(sq_err)?;
                conn.pragma_update(None, "query_only", "ON")
                    .map_err(sq_err)?;
                conn
            }
        };
        let result = read(&conn).map_err(|e| match e {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreError::Corrupt(e.to_string()),
            e => sq_err(e),
        });
        // A connection that failed is dropped, not reused.
        if result.is_ok() {
            if let Ok(mut idle) = self.idle.lock() {
                if idle.len() < IDLE_READERS {
                    idle.push(conn);
                }
            }
        }
        result
    }
}

/// A device from a row of [`DEVICE_STATE`]'s columns, in that order.
fn device_state_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: r.get(0)?,
        owner: r.get(1)?,
        key_kind: r.get(2)?,
        key_record: String::new(),
        ek_trust: r.get(3)?,
        key_assurance: r.get(4)?,
        enrolled_at: r.get(5)?,
        disabled: r.get::<_, i64>(6)? != 0,
        host: r.get(7)?,
        last_seen: r.get(8)?,
        evidence_iat: r.get(9)?,
        status: r.get(10)?,
        failing: split_list(&r.get::<_, String>(11)?),
        decision_json: r.get(12)?,
        report_json: None,
    })
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Write({})", self.ingest.device_id)
    }
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `url` (`sqlite://PATH`), migrates it
    /// and starts the writer thread.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl(url.to_owned()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every commit reaches the disk before it is acknowledged.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // Readers beside the writer task's own connection.
            .max_connections(6)
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        migrate(&pool).await?;
        let (writes, queue) = mpsc::channel(QUEUE);
        let path = options.get_filename().to_owned();
        let readers = std::sync::Arc::new(Readers {
            path: path.clone(),
            idle: std::sync::Mutex::new(Vec::new()),
        });
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer(path, queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            pool,
            writes,
            readers,
        })
    }

    async fn write<T>(&self, make: impl FnOnce(Reply<T>) -> Write) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writes
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer stopped".into()))?
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    // IMMEDIATE: a second process (an admin command) starting at the same time waits
    // here instead of failing to upgrade a read transaction.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, \
         applied_at INTEGER NOT NULL)",
    )
    .await
    .map_err(db_err)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
    for (version, statements) in migrations::SQLITE {
        if applied.contains(version) {
            continue;
        }
        for statement in *statements {
            tx.execute(*statement)
                .await
                .map_err(|e| StoreError::Migration {
                    version: *version,
                    message: e.to_string(),
                })?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)")
            .bind(*version)
            .bind(crate::now())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('server_id', ?1), ('nonce_key', ?2) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(crate::secret::random_token(16))
    .bind(crate::nonce::NonceKey::generate())
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

/// The writer thread: takes what is waiting, commits it together, answers.
fn writer(path: PathBuf, mut queue: mpsc::Receiver<Write>) {
    let mut conn: Option<rusqlite::Connection> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            match open_writer(&path) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    fail(&mut batch, &e);
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if let Err(e) = commit(c, &mut batch) {
            // Nothing of this batch is committed (the transaction rolled back when it
            // was dropped); a fresh connection for the next one.
            fail(&mut batch, &e);
            conn = None;
        }
    }
}

fn sq_err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// The writer's connection, set up as the pool's are.
fn open_writer(path: &std::path::Path) -> Result<rusqlite::Connection, StoreError> {
    let conn = rusqlite::Connection::open(path).map_err(sq_err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(sq_err)?;
    // Every commit reaches the disk before it is acknowledged.
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sq_err)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(sq_err)?;
    Ok(conn)
}

/// Answers every write of a failed batch with `error`.
fn fail(batch: &mut Vec<Write>, error: &StoreError) {
    let error = || StoreError::Unavailable(error.to_string());
    for write in batch.drain(..) {
        let _ = write.reply.send(Err(error()));
    }
}

/// Runs `batch` in one `BEGIN IMMEDIATE` transaction; answers only after the commit
/// returned. On an error nothing is answered (the caller fails the whole batch: nothing
/// of it was committed).
fn commit(conn: &mut rusqlite::Connection, batch: &mut Vec<Write>) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sq_err)?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for write in batch.iter() {
        outcomes.push(apply_ingest(&tx, &write.ingest).map_err(sq_err)?);
    }
    tx.commit().map_err(sq_err)?;
    for (write, outcome) in batch.drain(..).zip(outcomes) {
        let _ = write.reply.send(Ok(outcome));
    }
    Ok(())
}

/// One piece of evidence inside the writer's transaction. Every refusal is decided
/// before anything is written, except a `jti` seen with a fresh nonce (a device reusing
/// a `jti`), which spends that nonce and records nothing else.
fn apply_ingest(
    tx: &rusqlite::Transaction<'_>,
    ingest: &Ingest,
) -> rusqlite::Result<Result<(), IngestRefusal>> {
    use rusqlite::{params, OptionalExtension as _};
    let device: Option<(String, i64, String)> = tx
        .prepare_cached("SELECT status, disabled, enrollment FROM devices WHERE id = ?1")?
        .query_row(params![ingest.device_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let Some((previous, disabled, enrollment)) = device else {
        return Ok(Err(IngestRefusal::Device));
    };
    if disabled != 0 {
        return Ok(Err(IngestRefusal::Device));
    }
    if enrollment != ingest.enrollment {
        return Ok(Err(IngestRefusal::Enrollment));
    }
    // The nonce was checked (MAC, expiry) before; here it is recorded as spent, which
    // fails when it was spent before.
    let spent = tx
        .prepare_cached(
            "INSERT INTO spent_nonces (expires_at, nonce) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        )?
        .execute(params![ingest.nonce_expires_at, ingest.nonce])?;
    if spent == 0 {
        let seen = tx
            .prepare_cached("SELECT 1 FROM evidence WHERE device_id = ?1 AND jti = ?2")?
            .exists(params![ingest.device_id, ingest.jti])?;
        return Ok(Err(if seen {
            IngestRefusal::Replay
        } else {
            IngestRefusal::Nonce
        }));
    }
    let failing = ingest.failing.join(",");
    let inserted = tx
        .prepare_cached(
            "INSERT INTO evidence (device_id, jti, iat, received_at, status, failing) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (device_id, jti) DO NOTHING",
        )?
        .execute(params![
            ingest.device_id,
            ingest.jti,
            ingest.iat,
            ingest.received_at,
            ingest.status,
            failing
        ])?;
    if inserted == 0 {
        return Ok(Err(IngestRefusal::Replay));
    }
    tx.prepare_cached(
        "UPDATE devices SET host = ?2, last_seen = ?3, evidence_iat = ?4, status = ?5, \
         failing = ?6, decision = ?7, report = ?8, serial = ?9 WHERE id = ?1",
    )?
    .execute(params![
        ingest.device_id,
        ingest.host,
        ingest.received_at,
        ingest.iat,
        ingest.status,
        failing,
        ingest.decision_json,
        ingest.report_json,
        ingest.serial_number
    ])?;
    if previous != ingest.status {
        tx.prepare_cached(
            "INSERT INTO changes (device_id, at, from_status, to_status) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            ingest.device_id,
            ingest.received_at,
            previous,
            ingest.status
        ])?;
    }
    Ok(Ok(()))
}

impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn pool(&self) -> super::Pool {
        super::Pool::Sqlite(self.pool.clone())
    }

    fn server_id(&self) -> StoreFuture<'_, String> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'server_id'")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)
        })
    }

    fn nonce_key(&self) -> StoreFuture<'_, String> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'nonce_key'")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn insert_credential<'a>(&'a self, c: &'a NewCredential) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO credentials (hash, kind, role, name, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(&c.hash)
            .bind(c.kind.as_str())
            .bind(c.role.as_str())
            .bind(&c.name)
            .bind(c.created_at)
            .bind(c.expires_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn credential_role<'a>(
        &'a self,
        hash: &'a str,
        kind: CredentialKind,
        now: i64,
    ) -> StoreFuture<'a, Option<Role>> {
        Box::pin(async move {
            let role: Option<String> = sqlx::query_scalar(
                "SELECT role FROM credentials WHERE hash = ?1 AND kind = ?2 \
                 AND (expires_at IS NULL OR expires_at > ?3)",
            )
            .bind(hash)
            .bind(kind.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(role.as_deref().and_then(Role::parse))
        })
    }

    fn take_login<'a>(&'a self, hash: &'a str, now: i64) -> StoreFuture<'a, Option<Role>> {
        Box::pin(async move {
            let role: Option<String> = sqlx::query_scalar(
                "DELETE FROM credentials WHERE hash = ?1 AND kind = 'login' AND expires_at > ?2 \
                 RETURNING role",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(role.as_deref().and_then(Role::parse))
        })
    }

    fn count_admin_tokens(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM credentials WHERE kind = 'api' AND role = 'admin'",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
        })
    }

    fn insert_enrollment_token<'a>(
        &'a self,
        hash: &'a str,
        owner: &'a str,
        created_at: i64,
        expires_at: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO enrollment_tokens (hash, owner, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(hash)
            .bind(owner)
            .bind(created_at)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn enrollment_tokens(&self) -> StoreFuture<'_, Vec<EnrollmentToken>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT hash, owner, created_at, expires_at, used_at FROM enrollment_tokens \
                 ORDER BY created_at DESC",
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    let hash: String = r.try_get(0)?;
                    Ok(EnrollmentToken {
                        id: hash.chars().take(12).collect(),
                        owner: r.try_get(1)?,
                        created_at: r.try_get(2)?,
                        expires_at: r.try_get(3)?,
                        used_at: r.try_get(4)?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(db_err)
        })
    }

    fn spend_enrollment_token<'a>(
        &'a self,
        hash: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<String>> {
        Box::pin(async move {
            sqlx::query_scalar(
                "UPDATE enrollment_tokens SET used_at = ?2 \
                 WHERE hash = ?1 AND used_at IS NULL AND expires_at > ?2 RETURNING owner",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
        })
    }

    fn insert_pending<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
        pending_json: &'a str,
        expires_at: i64,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO pending_enrollments (id, owner, pending, expires_at) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(id)
            .bind(owner)
            .bind(pending_json)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn take_pending<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Option<(String, String)>> {
        Box::pin(async move {
            sqlx::query_as(
                "DELETE FROM pending_enrollments WHERE id = ?1 AND expires_at > ?2 \
                 RETURNING owner, pending",
            )
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
        })
    }

    fn spend_nonce<'a>(&'a self, nonce: &'a str, expires_at: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query(
                "INSERT INTO spent_nonces (expires_at, nonce) VALUES (?1, ?2) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(expires_at)
            .bind(nonce)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn insert_device<'a>(&'a self, d: &'a NewDevice) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO devices (id, owner, key_kind, key_record, ek_trust, key_assurance, \
                 enrolled_at, enrollment) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(&d.id)
            .bind(&d.owner)
            .bind(&d.key_kind)
            .bind(&d.key_record)
            .bind(&d.ek_trust)
            .bind(&d.key_assurance)
            .bind(d.enrolled_at)
            .bind(&d.enrollment)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn device<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Device>> {
        Box::pin(async move {
            let row = sqlx::query(&format!("SELECT {DEVICE_ALL} FROM devices WHERE id = ?1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.as_ref()
                .map(|r| device_from_row(r, Columns::All))
                .transpose()
        })
    }

    fn device_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<DeviceKey>> {
        Box::pin(async move {
            let row: Option<(String, String, String, i64)> = sqlx::query_as(
                "SELECT key_kind, key_record, enrollment, disabled FROM devices WHERE id = ?1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(
                row.map(|(key_kind, key_record, enrollment, disabled)| DeviceKey {
                    key_kind,
                    key_record,
                    enrollment,
                    disabled: disabled != 0,
                }),
            )
        })
    }

    fn device_state<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Device>> {
        Box::pin(async move {
            use rusqlite::OptionalExtension as _;
            self.readers.read(|conn| {
                conn.prepare_cached(&format!("SELECT {DEVICE_STATE} FROM devices WHERE id = ?1"))?
                    .query_row([id], device_state_row)
                    .optional()
            })
        })
    }

    fn devices_by_identity<'a>(
        &'a self,
        serials: &'a [String],
        hosts: &'a [String],
    ) -> StoreFuture<'a, Vec<IdentifiedDevice>> {
        Box::pin(async move {
            let Some(sql) = identity_query(serials.len(), hosts.len()) else {
                return Ok(Vec::new());
            };
            let mut query = sqlx::query(&sql);
            for value in serials.iter().chain(hosts) {
                query = query.bind(value);
            }
            let rows = query.fetch_all(&self.pool).await.map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok(IdentifiedDevice {
                        device: device_from_row(r, Columns::State)?,
                        serial_number: r
                            .try_get("serial")
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    })
                })
                .collect()
        })
    }

    fn devices(&self) -> StoreFuture<'_, Vec<Device>> {
        Box::pin(async move {
            let rows = sqlx::query(&format!(
                "SELECT {DEVICE_LISTING} FROM devices ORDER BY last_seen DESC, enrolled_at DESC"
            ))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
            rows.iter()
                .map(|r| device_from_row(r, Columns::Listing))
                .collect()
        })
    }

    fn set_disabled<'a>(&'a self, id: &'a str, disabled: bool) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query("UPDATE devices SET disabled = ?2 WHERE id = ?1")
                .bind(id)
                .bind(i64::from(disabled))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn delete_device<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // History and changes go with it (ON DELETE CASCADE, foreign_keys on).
            let done = sqlx::query("DELETE FROM devices WHERE id = ?1")
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn ingest(&self, ingest: Ingest) -> StoreFuture<'_, Result<(), IngestRefusal>> {
        Box::pin(async move {
            self.write(|reply| Write {
                ingest: Box::new(ingest),
                reply,
            })
            .await
        })
    }

    fn history<'a>(&'a self, id: &'a str, limit: i64) -> StoreFuture<'a, Vec<HistoryEntry>> {
        Box::pin(async move {
            let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
                "SELECT received_at, iat, jti, status, failing FROM evidence WHERE device_id = ?1 \
                 ORDER BY id DESC LIMIT ?2",
            )
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(rows
                .into_iter()
                .map(|(received_at, iat, jti, status, failing)| HistoryEntry {
                    received_at,
                    iat,
                    jti,
                    status,
                    failing: split_list(&failing),
                })
                .collect())
        })
    }

    fn changes<'a>(&'a self, id: &'a str, limit: i64) -> StoreFuture<'a, Vec<Change>> {
        Box::pin(async move {
            let rows: Vec<(i64, String, String)> = sqlx::query_as(
                "SELECT at, from_status, to_status FROM changes WHERE device_id = ?1 \
                 ORDER BY id DESC LIMIT ?2",
            )
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(rows
                .into_iter()
                .map(|(at, from, to)| Change { at, from, to })
                .collect())
        })
    }

    fn purge(&self, history_before: i64, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            // In batches, each its own short transaction: the evidence writer waits for
            // one batch at most, never for the whole purge.
            let mut removed = 0;
            loop {
                let batch = sqlx::query(
                    "DELETE FROM evidence WHERE id IN (SELECT id FROM evidence \
                     WHERE received_at < ?1 LIMIT ?2)",
                )
                .bind(history_before)
                .bind(PURGE_BATCH)
                .execute(&self.pool)
                .await
                .map_err(db_err)?
                .rows_affected();
                removed += batch;
                if batch < PURGE_BATCH as u64 {
                    break;
                }
            }
            sqlx::query("DELETE FROM spent_nonces WHERE expires_at < ?1")
                .bind(now.saturating_sub(super::SPENT_NONCE_MARGIN))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            for statement in [
                // Left by servers before migration 50.
                "DELETE FROM nonces WHERE expires_at < ?1",
                "DELETE FROM pending_enrollments WHERE expires_at < ?1",
                "DELETE FROM credentials WHERE expires_at IS NOT NULL AND expires_at < ?1",
            ] {
                sqlx::query(statement)
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
            }
            Ok(removed)
        })
    }
}

/// `SELECT ... WHERE serial IN (?, ...) OR lower(host) IN (?, ...)` for these many
/// values (numbered placeholders: serials first); `None` when both are empty.
fn identity_query(serials: usize, hosts: usize) -> Option<String> {
    let list = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut clauses = Vec::new();
    if serials > 0 {
        clauses.push(format!("serial IN ({})", list(1, serials)));
    }
    if hosts > 0 {
        clauses.push(format!("lower(host) IN ({})", list(1 + serials, hosts)));
    }
    (!clauses.is_empty()).then(|| {
        format!(
            "SELECT {DEVICE_STATE}, serial FROM devices WHERE {}",
            clauses.join(" OR ")
        )
    })
}
