//! [`Store`] on PostgreSQL, shared by several stateless `posture-server` replicas.
//!
//! ## Recording evidence: group commit
//! Evidence goes to a batcher task. Whenever one of its [`WRITERS`] is free, it takes
//! everything waiting at that moment (up to [`MAX_BATCH`]) and records it with one call
//! of `posture_record_evidence` (migration 50): one statement, so one transaction, one
//! round trip and one WAL flush for all of them; each caller is answered only after that
//! statement — and so its commit — returned. There is no timer: a lone piece of evidence
//! is written at once, and pieces gather only while the writers are busy. For each piece
//! the function locks the device row (`FOR UPDATE`; batches are sorted by device id so
//! that concurrent batches, here or on another replica, lock rows in the same order),
//! records the nonce as spent (refused when it was), appends the history, updates the
//! device, notes a compliance change in `changes` and notifies `posture_devices`. A refusal (unknown or disabled device,
//! enrolled again, replay, nonce) is decided before anything of that piece is written and
//! is answered for that piece alone; the others are recorded.
//!
//! Why: PostgreSQL holds one lock from a NOTIFYing transaction's commit to its end, so
//! such commits — their WAL flushes included — happen one after the other; with one
//! transaction per piece of evidence, ingestion was bound by the disk's flush latency
//! and every request kept a backend busy. A batch pays that once.
//! Device changes made by an admin (disable, enable, delete) notify `posture_devices`
//! too.
//!
//! ## The state cache
//! Every replica LISTENs on `posture_devices` and keeps the state of the devices it was
//! asked about ([`Store::device_state`], what a decision needs) until a notification
//! says the device changed — on whichever replica, or by an admin command. The cache is
//! used only while the listening connection is up: it is emptied and bypassed when that
//! connection is lost, and emptied again once it listens anew (notifications sent in
//! between are lost). A read that raced with a notification is not cached (an epoch
//! counts notifications). A replica forgets a device it changed itself as soon as its
//! statement returns, so a client reads its own writes; a decision on another replica
//! reflects every change committed before the notification reached that replica,
//! milliseconds after the commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::{Executor as _, Row as _};
use tokio::sync::{mpsc, oneshot, Semaphore};

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

/// The channel device changes are announced on.
const CHANNEL: &str = "posture_devices";

/// Most device states cached per replica (an arbitrary one is dropped beyond).
pub const CACHED_STATES: usize = 20_000;

/// Batches of evidence being recorded at once by one replica (each on its own
/// connection): one can be flushing its commit while the next runs its statements.
pub const WRITERS: usize = 2;

/// The most pieces of evidence recorded in one batch: bounds one statement's size
/// (≈ 2–3 KB each) and how long it holds its device rows.
pub const MAX_BATCH: usize = 128;

/// Evidence waiting for a writer; beyond this, callers wait to enqueue (backpressure).
const QUEUE: usize = 4096;

/// What a batch answers a piece of evidence.
type IngestOutcome = Result<Result<(), IngestRefusal>, StoreError>;

/// A piece of evidence waiting to be recorded, and where its caller waits.
struct Pending {
    ingest: Ingest,
    reply: oneshot::Sender<IngestOutcome>,
}

/// The PostgreSQL store (see the module documentation).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    states: Arc<StateCache>,
    ingests: mpsc::Sender<Pending>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://...`), migrates, and starts listening for device
    /// changes (so this must run inside a tokio runtime).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .max_connections(16)
            .connect(url)
            .await
            .map_err(db_err)?;
        migrate(&pool).await?;
        let states = Arc::new(StateCache::default());
        tokio::spawn(listen(pool.clone(), Arc::clone(&states)));
        let (ingests, queue) = mpsc::channel(QUEUE);
        tokio::spawn(batcher(pool.clone(), Arc::clone(&states), queue));
        Ok(Self {
            pool,
            states,
            ingests,
        })
    }

    /// Records `batch` with one call of `posture_record_evidence`, in this order (callers
    /// sort by device id): one outcome per piece, or the error that rolled all of them
    /// back. Public for the tests that check per-piece refusals inside one batch.
    pub async fn ingest_batch(
        &self,
        batch: &[Ingest],
    ) -> Result<Vec<Result<(), IngestRefusal>>, StoreError> {
        let outcomes = record_batch(&self.pool, batch).await.map_err(db_err);
        for ingest in batch {
            self.states.changed(&ingest.device_id);
        }
        outcomes
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending({})", self.ingest.device_id)
    }
}

/// Takes the evidence waiting whenever a writer is free and records it as one batch (see
/// the module documentation). Ends when the store is dropped.
async fn batcher(pool: PgPool, states: Arc<StateCache>, mut queue: mpsc::Receiver<Pending>) {
    let writers = Arc::new(Semaphore::new(WRITERS));
    while let Some(first) = queue.recv().await {
        // A writer first, then whatever gathered meanwhile: batches grow exactly when
        // the writers are busy.
        let Ok(permit) = Arc::clone(&writers).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let (pool, states) = (pool.clone(), Arc::clone(&states));
        tokio::spawn(async move {
            write_batch(&pool, &states, batch).await;
            drop(permit);
        });
    }
}

/// Records one batch and answers its callers, each only after the commit.
async fn write_batch(pool: &PgPool, states: &StateCache, mut batch: Vec<Pending>) {
    // Stable: a device's evidence keeps its order of arrival.
    batch.sort_by(|a, b| a.ingest.device_id.cmp(&b.ingest.device_id));
    let (ingests, replies): (Vec<Ingest>, Vec<_>) =
        batch.into_iter().map(|p| (p.ingest, p.reply)).unzip();
    let outcomes = match record_batch(pool, &ingests).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        // Two batches can still wait on each other through rows other than devices
        // (one nonce used by two devices' evidence): PostgreSQL aborts one of them,
        // which then records its pieces one at a time, where that cannot happen.
        Err(e) if ingests.len() > 1 && retryable(&e) => {
            let mut outcomes = Vec::with_capacity(ingests.len());
            for ingest in &ingests {
                outcomes.push(
                    record_batch(pool, std::slice::from_ref(ingest))
                        .await
                        .map_err(db_err)
                        .and_then(|mut one| {
                            one.pop().ok_or_else(|| {
                                StoreError::Corrupt(
                                    "posture_record_evidence answered nothing".into(),
                                )
                            })
                        }),
                );
            }
            outcomes
        }
        Err(e) => {
            let message = db_err(e).to_string();
            ingests
                .iter()
                .map(|_| Err(StoreError::Unavailable(message.clone())))
                .collect()
        }
    };
    // This replica's own changes are seen at once (read your writes); the others hear
    // them from the notifications.
    for ingest in &ingests {
        states.changed(&ingest.device_id);
    }
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
}

/// A deadlock or serialization failure: nothing was written, trying again can succeed.
fn retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("40P01" | "40001")))
}

/// One call of `posture_record_evidence` with `batch`, in this order.
async fn record_batch(
    pool: &PgPool,
    batch: &[Ingest],
) -> Result<Vec<Result<(), IngestRefusal>>, sqlx::Error> {
    fn column<'a, T>(batch: &'a [Ingest], f: impl Fn(&'a Ingest) -> T) -> Vec<T> {
        batch.iter().map(f).collect()
    }
    let codes: Vec<String> = sqlx::query_scalar(
        "SELECT posture_record_evidence($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(column(batch, |i| i.device_id.as_str()))
    .bind(column(batch, |i| i.enrollment.as_str()))
    .bind(column(batch, |i| i.nonce.as_str()))
    .bind(column(batch, |i| i.nonce_expires_at))
    .bind(column(batch, |i| i.jti.as_str()))
    .bind(column(batch, |i| i.iat))
    .bind(column(batch, |i| i.received_at))
    .bind(column(batch, |i| i.status.as_str()))
    .bind(column(batch, |i| i.failing.join(",")))
    .bind(column(batch, |i| i.host.as_str()))
    .bind(column(batch, |i| i.decision_json.as_str()))
    .bind(column(batch, |i| i.report_json.as_str()))
    .bind(column(batch, |i| i.serial_number.as_deref()))
    .fetch_one(pool)
    .await?;
    if codes.len() != batch.len() {
        return Err(sqlx::Error::Protocol(format!(
            "posture_record_evidence answered {} outcomes for {} pieces of evidence",
            codes.len(),
            batch.len()
        )));
    }
    codes
        .iter()
        .map(|code| match code.as_str() {
            "ok" => Ok(Ok(())),
            "device" => Ok(Err(IngestRefusal::Device)),
            "enrollment" => Ok(Err(IngestRefusal::Enrollment)),
            "nonce" => Ok(Err(IngestRefusal::Nonce)),
            "replay" => Ok(Err(IngestRefusal::Replay)),
            other => Err(sqlx::Error::Protocol(format!(
                "posture_record_evidence answered {other:?}"
            ))),
        })
        .collect()
}

/// Device states, valid while `listening` (see the module documentation).
#[derive(Debug, Default)]
struct StateCache {
    inner: Mutex<StateInner>,
}

#[derive(Debug, Default)]
struct StateInner {
    listening: bool,
    /// Counts notifications and (dis)connections: a read that began in another epoch
    /// may predate a change and is not cached.
    epoch: u64,
    states: HashMap<String, Device>,
}

impl StateCache {
    fn get(&self, id: &str) -> Option<Device> {
        let inner = self.inner.lock().ok()?;
        if !inner.listening {
            return None;
        }
        inner.states.get(id).cloned()
    }

    fn epoch(&self) -> Option<u64> {
        let inner = self.inner.lock().ok()?;
        inner.listening.then_some(inner.epoch)
    }

    fn insert(&self, epoch: u64, device: &Device) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if !inner.listening || inner.epoch != epoch {
            return;
        }
        if inner.states.len() >= CACHED_STATES && !inner.states.contains_key(&device.id) {
            let victim = inner.states.keys().next().cloned();
            if let Some(victim) = victim {
                inner.states.remove(&victim);
            }
        }
        inner.states.insert(device.id.clone(), device.clone());
    }

    fn changed(&self, id: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.epoch = inner.epoch.wrapping_add(1);
            inner.states.remove(id);
        }
    }

    /// Empties the cache and uses it (`true`: every change is heard from now on) or not.
    fn reset(&self, listening: bool) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.listening = listening;
            inner.epoch = inner.epoch.wrapping_add(1);
            inner.states.clear();
        }
    }
}

/// Listens for device changes for as long as the store lives; reconnects when the
/// connection is lost, with the cache off in between.
async fn listen(pool: PgPool, cache: Arc<StateCache>) {
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                if pool.is_closed() {
                    return;
                }
                tracing::debug!(error = %e, "cannot listen for device changes; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        cache.reset(true);
        // Until the connection is lost (`Ok(None)`, perhaps reconnected already) or
        // fails: changes in between were not heard.
        while let Ok(Some(notification)) = listener.try_recv().await {
            cache.changed(notification.payload());
        }
        cache.reset(false);
        tracing::warn!("lost the connection listening for device changes; reconnecting");
    }
}

async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    // Replicas starting together: one migrates, the others wait and then see it done.
    sqlx::query("SELECT pg_advisory_xact_lock(7027873)")
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, \
         applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(db_err)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
    for (version, statements) in migrations::POSTGRES {
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
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(*version)
            .bind(crate::now())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    // Made once, by whichever replica migrates first; the others read the same.
    sqlx::query(
        "INSERT INTO meta (key, value) VALUES ('server_id', $1), ('nonce_key', $2) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(crate::secret::random_token(16))
    .bind(crate::nonce::NonceKey::generate())
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    tx.commit().await.map_err(db_err)
}

impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn pool(&self) -> super::Pool {
        super::Pool::Postgres(self.pool.clone())
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
                 VALUES ($1, $2, $3, $4, $5, $6)",
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
                "SELECT role FROM credentials WHERE hash = $1 AND kind = $2 \
                 AND (expires_at IS NULL OR expires_at > $3)",
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
                "DELETE FROM credentials WHERE hash = $1 AND kind = 'login' AND expires_at > $2 \
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
                 VALUES ($1, $2, $3, $4)",
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
                "UPDATE enrollment_tokens SET used_at = $2 \
                 WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING owner",
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
                 VALUES ($1, $2, $3, $4)",
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
                "DELETE FROM pending_enrollments WHERE id = $1 AND expires_at > $2 \
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
                "INSERT INTO spent_nonces (expires_at, nonce) VALUES ($1, $2) \
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
                 enrolled_at, enrollment) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
            let row = sqlx::query(&format!("SELECT {DEVICE_ALL} FROM devices WHERE id = $1"))
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
                "SELECT key_kind, key_record, enrollment, disabled FROM devices WHERE id = $1",
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
            if let Some(device) = self.states.get(id) {
                return Ok(Some(device));
            }
            let epoch = self.states.epoch();
            let row = sqlx::query(&format!("SELECT {DEVICE_STATE} FROM devices WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            let device = row
                .as_ref()
                .map(|r| device_from_row(r, Columns::State))
                .transpose()?;
            if let (Some(device), Some(epoch)) = (&device, epoch) {
                self.states.insert(epoch, device);
            }
            Ok(device)
        })
    }

    fn devices_by_identity<'a>(
        &'a self,
        serials: &'a [String],
        hosts: &'a [String],
    ) -> StoreFuture<'a, Vec<IdentifiedDevice>> {
        Box::pin(async move {
            if serials.is_empty() && hosts.is_empty() {
                return Ok(Vec::new());
            }
            let rows = sqlx::query(&format!(
                "SELECT {DEVICE_STATE}, serial FROM devices \
                 WHERE serial = ANY($1) OR lower(host) = ANY($2)"
            ))
            .bind(serials)
            .bind(hosts)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
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
            let done = sqlx::query(
                "WITH d AS (UPDATE devices SET disabled = $2 WHERE id = $1 RETURNING id) \
                 SELECT pg_notify('posture_devices', id) FROM d",
            )
            .bind(id)
            .bind(i64::from(disabled))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            self.states.changed(id);
            Ok(done.is_some())
        })
    }

    fn delete_device<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // History and changes go with it (ON DELETE CASCADE).
            let done = sqlx::query(
                "WITH d AS (DELETE FROM devices WHERE id = $1 RETURNING id) \
                 SELECT pg_notify('posture_devices', id) FROM d",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            self.states.changed(id);
            Ok(done.is_some())
        })
    }

    fn ingest(&self, ingest: Ingest) -> StoreFuture<'_, Result<(), IngestRefusal>> {
        Box::pin(async move {
            let stopped = || StoreError::Unavailable("the evidence batcher stopped".into());
            let (reply, answer) = oneshot::channel();
            self.ingests
                .send(Pending { ingest, reply })
                .await
                .map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
    }

    fn history<'a>(&'a self, id: &'a str, limit: i64) -> StoreFuture<'a, Vec<HistoryEntry>> {
        Box::pin(async move {
            let rows: Vec<(i64, i64, String, String, String)> = sqlx::query_as(
                "SELECT received_at, iat, jti, status, failing FROM evidence WHERE device_id = $1 \
                 ORDER BY id DESC LIMIT $2",
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
                "SELECT at, from_status, to_status FROM changes WHERE device_id = $1 \
                 ORDER BY id DESC LIMIT $2",
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
            // In batches, each its own short transaction; replicas purging at the same
            // time skip each other's rows instead of waiting for them.
            let mut removed = 0;
            loop {
                let batch = sqlx::query(
                    "DELETE FROM evidence WHERE id IN (SELECT id FROM evidence \
                     WHERE received_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
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
            sqlx::query("DELETE FROM spent_nonces WHERE expires_at < $1")
                .bind(now.saturating_sub(super::SPENT_NONCE_MARGIN))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            for statement in [
                // Left by servers before migration 50 (rolling upgrades).
                "DELETE FROM nonces WHERE expires_at < $1",
                "DELETE FROM pending_enrollments WHERE expires_at < $1",
                "DELETE FROM credentials WHERE expires_at IS NOT NULL AND expires_at < $1",
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
