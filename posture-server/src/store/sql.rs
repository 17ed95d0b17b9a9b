//! [`Store`] over SQLite and PostgreSQL with sqlx's driver-neutral `Any` layer: the same
//! statements (`$N` placeholders, `RETURNING`, `ON CONFLICT` work in both), per-database
//! migrations and connection set-up.

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor as _, Row as _};

use super::migrations;
use super::{
    Backend, Change, CredentialKind, Device, EnrollmentToken, HistoryEntry, Ingest, IngestRefusal,
    NewCredential, NewDevice, Role, Store, StoreError, StoreFuture,
};

/// How long a request waits for a database connection before it is answered 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The SQL store (see the module documentation).
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

const DEVICE_COLUMNS: &str = "id, owner, key_kind, key_record, ek_trust, key_assurance, \
    enrolled_at, disabled, host, last_seen, evidence_iat, status, failing, decision, report";

fn device_from_row(row: &AnyRow) -> Result<Device, StoreError> {
    let get = |e: sqlx::Error| StoreError::Corrupt(e.to_string());
    Ok(Device {
        id: row.try_get("id").map_err(get)?,
        owner: row.try_get("owner").map_err(get)?,
        key_kind: row.try_get("key_kind").map_err(get)?,
        key_record: row.try_get("key_record").map_err(get)?,
        ek_trust: row.try_get("ek_trust").map_err(get)?,
        key_assurance: row.try_get("key_assurance").map_err(get)?,
        enrolled_at: row.try_get("enrolled_at").map_err(get)?,
        disabled: row.try_get::<i64, _>("disabled").map_err(get)? != 0,
        host: row.try_get("host").map_err(get)?,
        last_seen: row.try_get("last_seen").map_err(get)?,
        evidence_iat: row.try_get("evidence_iat").map_err(get)?,
        status: row.try_get("status").map_err(get)?,
        failing: split_list(&row.try_get::<String, _>("failing").map_err(get)?),
        decision_json: row.try_get("decision").map_err(get)?,
        report_json: row.try_get("report").map_err(get)?,
    })
}

impl SqlStore {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`) and migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        let pool = match backend {
            Backend::Sqlite => {
                // One writer at a time anyway; a few readers beside it.
                let url = if url.contains('?') {
                    url.to_owned()
                } else {
                    format!("{url}?mode=rwc")
                };
                options
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // Every commit reaches the disk before it is acknowledged.
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await
                    .map_err(db_err)?
            }
            Backend::Postgres => options
                .max_connections(16)
                .connect(url)
                .await
                .map_err(db_err)?,
        };
        if backend == Backend::Sqlite {
            pool.execute("PRAGMA journal_mode = WAL")
                .await
                .map_err(db_err)?;
        }
        let store = Self { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let list = match self.backend {
            Backend::Sqlite => migrations::SQLITE,
            Backend::Postgres => migrations::POSTGRES,
        };
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if self.backend == Backend::Postgres {
            // Replicas starting together: one migrates, the others wait and then see it done.
            sqlx::query("SELECT pg_advisory_xact_lock(7027873)")
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await
        .map_err(db_err)?;
        let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        for (version, statements) in list {
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
        let id = crate::secret::random_token(16);
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('server_id', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn fetch_devices(&self) -> Result<Vec<Device>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY last_seen DESC, enrolled_at DESC"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(device_from_row).collect()
    }

    async fn do_ingest(&self, ingest: &Ingest) -> Result<Result<(), IngestRefusal>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // A write first: SQLite takes the write lock here (waiting its turn) rather than
        // failing to upgrade a read snapshot later.
        let spent =
            sqlx::query("DELETE FROM nonces WHERE nonce = $1 AND expires_at >= $2 RETURNING nonce")
                .bind(&ingest.nonce)
                .bind(ingest.received_at)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if spent.is_none() {
            let seen = sqlx::query("SELECT 1 FROM evidence WHERE device_id = $1 AND jti = $2")
                .bind(&ingest.device_id)
                .bind(&ingest.jti)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            return Ok(Err(if seen.is_some() {
                IngestRefusal::Replay
            } else {
                IngestRefusal::Nonce
            }));
        }
        let previous = sqlx::query("SELECT status, disabled FROM devices WHERE id = $1")
            .bind(&ingest.device_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(previous) = previous else {
            return Ok(Err(IngestRefusal::Device));
        };
        let previous_status: String = previous.try_get(0).map_err(db_err)?;
        if previous.try_get::<i64, _>(1).map_err(db_err)? != 0 {
            return Ok(Err(IngestRefusal::Device));
        }
        let failing = ingest.failing.join(",");
        let inserted = sqlx::query(
            "INSERT INTO evidence (device_id, jti, iat, received_at, status, failing) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id, jti) DO NOTHING RETURNING id",
        )
        .bind(&ingest.device_id)
        .bind(&ingest.jti)
        .bind(ingest.iat)
        .bind(ingest.received_at)
        .bind(&ingest.status)
        .bind(&failing)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if inserted.is_none() {
            return Ok(Err(IngestRefusal::Replay));
        }
        sqlx::query(
            "UPDATE devices SET host = $2, last_seen = $3, evidence_iat = $4, status = $5, \
             failing = $6, decision = $7, report = $8 WHERE id = $1",
        )
        .bind(&ingest.device_id)
        .bind(&ingest.host)
        .bind(ingest.received_at)
        .bind(ingest.iat)
        .bind(&ingest.status)
        .bind(&failing)
        .bind(&ingest.decision_json)
        .bind(&ingest.report_json)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if previous_status != ingest.status {
            sqlx::query(
                "INSERT INTO changes (device_id, at, from_status, to_status) VALUES ($1, $2, $3, $4)",
            )
            .bind(&ingest.device_id)
            .bind(ingest.received_at)
            .bind(&previous_status)
            .bind(&ingest.status)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(Ok(()))
    }
}

impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn server_id(&self) -> StoreFuture<'_, String> {
        Box::pin(async move {
            let row = sqlx::query("SELECT value FROM meta WHERE key = 'server_id'")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
            row.try_get(0).map_err(db_err)
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
            let row = sqlx::query(
                "SELECT role FROM credentials WHERE hash = $1 AND kind = $2 \
                 AND (expires_at IS NULL OR expires_at > $3)",
            )
            .bind(hash)
            .bind(kind.as_str())
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            match row {
                None => Ok(None),
                Some(row) => {
                    let role: String = row.try_get(0).map_err(db_err)?;
                    Ok(Role::parse(&role))
                }
            }
        })
    }

    fn take_login<'a>(&'a self, hash: &'a str, now: i64) -> StoreFuture<'a, Option<Role>> {
        Box::pin(async move {
            let row = sqlx::query(
                "DELETE FROM credentials WHERE hash = $1 AND kind = 'login' AND expires_at > $2 \
                 RETURNING role",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            match row {
                None => Ok(None),
                Some(row) => Ok(Role::parse(&row.try_get::<String, _>(0).map_err(db_err)?)),
            }
        })
    }

    fn count_admin_tokens(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT COUNT(*) FROM credentials WHERE kind = 'api' AND role = 'admin'",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
            row.try_get(0).map_err(db_err)
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
                "INSERT INTO enrollment_tokens (hash, owner, created_at, expires_at) VALUES ($1, $2, $3, $4)",
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
            let row = sqlx::query(
                "UPDATE enrollment_tokens SET used_at = $2 \
                 WHERE hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING owner",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            row.map(|r| r.try_get(0)).transpose().map_err(db_err)
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
                "INSERT INTO pending_enrollments (id, owner, pending, expires_at) VALUES ($1, $2, $3, $4)",
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
            let row = sqlx::query(
                "DELETE FROM pending_enrollments WHERE id = $1 AND expires_at > $2 RETURNING owner, pending",
            )
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .transpose()
                .map_err(db_err)
        })
    }

    fn insert_nonce<'a>(&'a self, nonce: &'a str, expires_at: i64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query("INSERT INTO nonces (nonce, expires_at) VALUES ($1, $2)")
                .bind(nonce)
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    fn take_nonce<'a>(&'a self, nonce: &'a str, now: i64) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let row = sqlx::query(
                "DELETE FROM nonces WHERE nonce = $1 AND expires_at >= $2 RETURNING nonce",
            )
            .bind(nonce)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(row.is_some())
        })
    }

    fn insert_device<'a>(&'a self, d: &'a NewDevice) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO devices (id, owner, key_kind, key_record, ek_trust, key_assurance, enrolled_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&d.id)
            .bind(&d.owner)
            .bind(&d.key_kind)
            .bind(&d.key_record)
            .bind(&d.ek_trust)
            .bind(&d.key_assurance)
            .bind(d.enrolled_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(())
        })
    }

    fn device<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Device>> {
        Box::pin(async move {
            let row = sqlx::query(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
            row.as_ref().map(device_from_row).transpose()
        })
    }

    fn devices(&self) -> StoreFuture<'_, Vec<Device>> {
        Box::pin(self.fetch_devices())
    }

    fn set_disabled<'a>(&'a self, id: &'a str, disabled: bool) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let done = sqlx::query("UPDATE devices SET disabled = $2 WHERE id = $1")
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
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            for table in [
                "DELETE FROM evidence WHERE device_id = $1",
                "DELETE FROM changes WHERE device_id = $1",
            ] {
                sqlx::query(table)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            let done = sqlx::query("DELETE FROM devices WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(done.rows_affected() > 0)
        })
    }

    fn ingest<'a>(&'a self, ingest: &'a Ingest) -> StoreFuture<'a, Result<(), IngestRefusal>> {
        Box::pin(self.do_ingest(ingest))
    }

    fn history<'a>(&'a self, id: &'a str, limit: i64) -> StoreFuture<'a, Vec<HistoryEntry>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT received_at, iat, jti, status, failing FROM evidence WHERE device_id = $1 \
                 ORDER BY id DESC LIMIT $2",
            )
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok(HistoryEntry {
                        received_at: r.try_get(0)?,
                        iat: r.try_get(1)?,
                        jti: r.try_get(2)?,
                        status: r.try_get(3)?,
                        failing: split_list(&r.try_get::<String, _>(4)?),
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(db_err)
        })
    }

    fn changes<'a>(&'a self, id: &'a str, limit: i64) -> StoreFuture<'a, Vec<Change>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT at, from_status, to_status FROM changes WHERE device_id = $1 \
                 ORDER BY id DESC LIMIT $2",
            )
            .bind(id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    Ok(Change {
                        at: r.try_get(0)?,
                        from: r.try_get(1)?,
                        to: r.try_get(2)?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(db_err)
        })
    }

    fn purge(&self, history_before: i64, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let removed = sqlx::query("DELETE FROM evidence WHERE received_at < $1")
                .bind(history_before)
                .execute(&self.pool)
                .await
                .map_err(db_err)?
                .rows_affected();
            for statement in [
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
