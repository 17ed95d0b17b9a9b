//! The transmitter's SQL, written once for both databases: the items inside
//! `for_each_db!` are compiled twice, in `sqlite` with `Db = Sqlite` and in `postgres`
//! with `Db = Postgres` (both accept `$N` parameters and `ON CONFLICT`), and the public
//! functions below pick one by the store's [`Pool`].

use sqlx::Row as _;

use super::{caep_status, compliance_claims, reasons, StreamConfig, Transition, Transmitter};
use crate::domain::{decide, Server};
use crate::store::{Device, Pool, StoreError};

fn db(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A stream row.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Its configuration.
    pub config: StreamConfig,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    /// Why, when set.
    pub reason: Option<String>,
    /// Last verification request.
    pub last_verification: i64,
}

/// A push event due for delivery.
#[derive(Debug, Clone)]
pub struct Due {
    /// Row id.
    pub id: i64,
    /// The SET.
    pub set_jwt: String,
    /// Tries so far.
    pub attempts: i64,
    /// When it was made.
    pub created_at: i64,
    /// The lease it was taken with.
    pub next_attempt: i64,
    /// Its stream.
    pub stream: StreamConfig,
}

/// A Tailscale update due.
#[derive(Debug, Clone)]
pub struct TailscaleDue {
    /// Row id.
    pub id: i64,
    /// The posture device.
    pub device_id: String,
    /// Its host name.
    pub host: Option<String>,
    /// Compliant now.
    pub compliant: bool,
    /// Key assurance.
    pub assurance: String,
    /// Tries so far.
    pub attempts: i64,
    /// When it was queued.
    pub created_at: i64,
    /// The lease it was taken with.
    pub next_attempt: i64,
}

macro_rules! for_each_db {
    ($($item:item)*) => {
        /// The SQL on SQLite.
        pub mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            type Db = sqlx::Sqlite;
            type DbPool = sqlx::Pool<Db>;
            $($item)*
        }
        /// The same SQL on PostgreSQL.
        pub mod postgres {
            #[allow(unused_imports)]
            use super::*;
            type Db = sqlx::Postgres;
            type DbPool = sqlx::Pool<Db>;
            $($item)*
        }
    };
}

for_each_db! {
    type Tx<'a> = sqlx::Transaction<'a, Db>;

    fn stream_from_row(row: &<Db as sqlx::Database>::Row) -> Result<Stream, StoreError> {
        let config: String = row.try_get("config").map_err(corrupt)?;
        Ok(Stream {
            config: serde_json::from_str(&config).map_err(corrupt)?,
            status: row.try_get("status").map_err(corrupt)?,
            reason: row.try_get("reason").map_err(corrupt)?,
            last_verification: row.try_get("last_verification").map_err(corrupt)?,
        })
    }

    const STREAM_COLUMNS: &str = "config, status, reason, last_verification";

    /// Every stream.
    pub async fn streams(pool: &DbPool) -> Result<Vec<Stream>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {STREAM_COLUMNS} FROM ssf_streams ORDER BY created_at, id"
        ))
        .fetch_all(pool)
        .await
        .map_err(db)?;
        rows.iter().map(stream_from_row).collect()
    }

    /// One stream.
    pub async fn stream(pool: &DbPool, id: &str) -> Result<Option<Stream>, StoreError> {
        let row = sqlx::query(&format!("SELECT {STREAM_COLUMNS} FROM ssf_streams WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(db)?;
        row.as_ref().map(stream_from_row).transpose()
    }

    /// Records a new stream.
    pub async fn insert_stream(pool: &DbPool, config: &StreamConfig, now: i64) -> Result<(), StoreError> {
        let text = serde_json::to_string(config).map_err(corrupt)?;
        sqlx::query(
            "INSERT INTO ssf_streams (id, method, config, status, created_at) \
             VALUES ($1, $2, $3, 'enabled', $4)",
        )
        .bind(&config.stream_id)
        .bind(method_column(config))
        .bind(text)
        .bind(now)
        .execute(pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Replaces a stream's configuration.
    pub async fn update_stream(pool: &DbPool, config: &StreamConfig) -> Result<bool, StoreError> {
        let text = serde_json::to_string(config).map_err(corrupt)?;
        let done = sqlx::query("UPDATE ssf_streams SET method = $2, config = $3 WHERE id = $1")
            .bind(&config.stream_id)
            .bind(method_column(config))
            .bind(text)
            .execute(pool)
            .await
            .map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a stream with its queued events and removed subjects.
    pub async fn delete_stream(pool: &DbPool, id: &str) -> Result<bool, StoreError> {
        let mut tx = pool.begin().await.map_err(db)?;
        for statement in [
            "DELETE FROM ssf_events WHERE stream_id = $1",
            "DELETE FROM ssf_excluded WHERE stream_id = $1",
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await.map_err(db)?;
        }
        let done = sqlx::query("DELETE FROM ssf_streams WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    /// Sets a stream's status; a disabled stream holds no events.
    pub async fn set_status(pool: &DbPool, id: &str, status: &str, reason: Option<&str>) -> Result<bool, StoreError> {
        let mut tx = pool.begin().await.map_err(db)?;
        let done = sqlx::query("UPDATE ssf_streams SET status = $2, reason = $3 WHERE id = $1")
            .bind(id)
            .bind(status)
            .bind(reason)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        if status == "disabled" {
            sqlx::query("DELETE FROM ssf_events WHERE stream_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes (`excluded = true`) or adds back subject keys of a stream.
    pub async fn set_excluded(pool: &DbPool, id: &str, keys: &[String], excluded: bool) -> Result<(), StoreError> {
        let mut tx = pool.begin().await.map_err(db)?;
        for key in keys {
            let statement = if excluded {
                "INSERT INTO ssf_excluded (stream_id, subject) VALUES ($1, $2) \
                 ON CONFLICT (stream_id, subject) DO NOTHING"
            } else {
                "DELETE FROM ssf_excluded WHERE stream_id = $1 AND subject = $2"
            };
            sqlx::query(statement).bind(id).bind(key).execute(&mut *tx).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    /// Queues a SET on a stream; with `verification_at`, records the verification time
    /// unless the last one was more recent than `min_interval` (then `false`).
    pub async fn queue_verification(
        pool: &DbPool,
        id: &str,
        jti: &str,
        set_jwt: &str,
        now: i64,
        min_interval: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = pool.begin().await.map_err(db)?;
        let done = sqlx::query(
            "UPDATE ssf_streams SET last_verification = $2 WHERE id = $1 AND last_verification <= $3",
        )
        .bind(id)
        .bind(now)
        .bind(now - min_interval)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, id, jti, set_jwt, now).await?;
        tx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn insert_event(tx: &mut Tx<'_>, stream: &str, jti: &str, set_jwt: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO ssf_events (stream_id, jti, set_jwt, created_at, next_attempt) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(stream)
        .bind(jti)
        .bind(set_jwt)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Poll: acknowledges `acked` (and SETs the receiver reported errors for), then up to
    /// `max` unacknowledged SETs, oldest first, and whether more wait.
    pub async fn poll(
        pool: &DbPool,
        id: &str,
        acked: &[String],
        max: i64,
    ) -> Result<(Vec<(String, String)>, bool), StoreError> {
        let mut tx = pool.begin().await.map_err(db)?;
        for jti in acked {
            sqlx::query("DELETE FROM ssf_events WHERE stream_id = $1 AND jti = $2")
                .bind(id)
                .bind(jti)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        let rows = sqlx::query(
            "SELECT jti, set_jwt FROM ssf_events WHERE stream_id = $1 ORDER BY id LIMIT $2",
        )
        .bind(id)
        .bind(max + 1)
        .fetch_all(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let more = rows.len() as i64 > max;
        let sets = rows
            .iter()
            .take(max.max(0) as usize)
            .map(|r| Ok((r.try_get("jti").map_err(corrupt)?, r.try_get("set_jwt").map_err(corrupt)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((sets, more))
    }

    /// Push events due now on enabled push streams, each leased for `lease` seconds (a
    /// row another replica leased first is skipped).
    pub async fn take_due(pool: &DbPool, now: i64, lease: i64) -> Result<Vec<Due>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, e.set_jwt, e.attempts, e.created_at, e.next_attempt, s.config \
             FROM ssf_events e JOIN ssf_streams s ON s.id = e.stream_id \
             WHERE s.method = 'push' AND s.status = 'enabled' AND e.next_attempt <= $1 \
             ORDER BY e.id LIMIT 64",
        )
        .bind(now)
        .fetch_all(pool)
        .await
        .map_err(db)?;
        let mut due = Vec::new();
        for row in rows {
            let id: i64 = row.try_get("id").map_err(corrupt)?;
            let next_attempt: i64 = row.try_get("next_attempt").map_err(corrupt)?;
            let leased = sqlx::query(
                "UPDATE ssf_events SET next_attempt = $3 WHERE id = $1 AND next_attempt = $2",
            )
            .bind(id)
            .bind(next_attempt)
            .bind(now + lease)
            .execute(pool)
            .await
            .map_err(db)?;
            if leased.rows_affected() == 0 {
                continue;
            }
            let config: String = row.try_get("config").map_err(corrupt)?;
            due.push(Due {
                id,
                set_jwt: row.try_get("set_jwt").map_err(corrupt)?,
                attempts: row.try_get("attempts").map_err(corrupt)?,
                created_at: row.try_get("created_at").map_err(corrupt)?,
                next_attempt: now + lease,
                stream: serde_json::from_str(&config).map_err(corrupt)?,
            });
        }
        Ok(due)
    }

    /// Deletes a delivered (or abandoned) event.
    pub async fn event_done(pool: &DbPool, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM ssf_events WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Schedules another try of an event.
    pub async fn event_retry(pool: &DbPool, id: i64, next_attempt: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE ssf_events SET attempts = attempts + 1, next_attempt = $2, last_error = $3 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(next_attempt)
        .bind(error)
        .execute(pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Tailscale updates due now, leased; older updates of the same device are dropped
    /// (only the newest state is worth sending).
    pub async fn take_tailscale(pool: &DbPool, now: i64, lease: i64) -> Result<Vec<TailscaleDue>, StoreError> {
        let rows = sqlx::query(
            "SELECT q.id, q.device_id, q.host, q.compliant, q.assurance, q.attempts, \
             q.created_at, q.next_attempt FROM tailscale_queue q \
             WHERE q.next_attempt <= $1 AND NOT EXISTS (SELECT 1 FROM tailscale_queue n \
             WHERE n.device_id = q.device_id AND n.id > q.id) ORDER BY q.id LIMIT 32",
        )
        .bind(now)
        .fetch_all(pool)
        .await
        .map_err(db)?;
        let mut due = Vec::new();
        for row in rows {
            let id: i64 = row.try_get("id").map_err(corrupt)?;
            let device_id: String = row.try_get("device_id").map_err(corrupt)?;
            let next_attempt: i64 = row.try_get("next_attempt").map_err(corrupt)?;
            let leased = sqlx::query(
                "UPDATE tailscale_queue SET next_attempt = $3 WHERE id = $1 AND next_attempt = $2",
            )
            .bind(id)
            .bind(next_attempt)
            .bind(now + lease)
            .execute(pool)
            .await
            .map_err(db)?;
            if leased.rows_affected() == 0 {
                continue;
            }
            sqlx::query("DELETE FROM tailscale_queue WHERE device_id = $1 AND id < $2")
                .bind(&device_id)
                .bind(id)
                .execute(pool)
                .await
                .map_err(db)?;
            let compliant: i64 = row.try_get("compliant").map_err(corrupt)?;
            due.push(TailscaleDue {
                id,
                device_id,
                host: row.try_get("host").map_err(corrupt)?,
                compliant: compliant != 0,
                assurance: row.try_get("assurance").map_err(corrupt)?,
                attempts: row.try_get("attempts").map_err(corrupt)?,
                created_at: row.try_get("created_at").map_err(corrupt)?,
                next_attempt: now + lease,
            });
        }
        Ok(due)
    }

    /// Deletes a sent (or abandoned) Tailscale update.
    pub async fn tailscale_done(pool: &DbPool, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM tailscale_queue WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Schedules another try of a Tailscale update.
    pub async fn tailscale_retry(pool: &DbPool, id: i64, next_attempt: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE tailscale_queue SET attempts = attempts + 1, next_attempt = $2, \
             last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(next_attempt)
        .bind(error)
        .execute(pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    /// Which events a pump makes: the streams that take them and whether Tailscale does.
    struct Fanout<'a> {
        transmitter: &'a Transmitter,
        streams: Vec<Stream>,
        now: i64,
        made: usize,
    }

    impl Fanout<'_> {
        /// Announces `t` (it differs from what was announced) and records it as announced.
        async fn announce(&mut self, tx: &mut Tx<'_>, t: &Transition) -> Result<(), StoreError> {
            let txn = crate::secret::random_token(16);
            if let Some(keys) = &self.transmitter.keys {
                for stream in &self.streams {
                    if stream.status == "disabled"
                        || !stream.config.events_delivered.iter().any(|e| e == super::super::DEVICE_COMPLIANCE_CHANGE)
                    {
                        continue;
                    }
                    // COUNT: BIGINT on both databases.
                    let excluded: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM ssf_excluded WHERE stream_id = $1 AND subject IN ($2, $3)",
                    )
                    .bind(&stream.config.stream_id)
                    .bind(format!("device:{}", t.device_id))
                    .bind(format!("email:{}", t.owner.to_lowercase()))
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(db)?;
                    if excluded > 0 {
                        continue;
                    }
                    let claims = compliance_claims(&stream.config, t, &txn, self.now);
                    let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
                    let set_jwt = keys.sign(stream.config.signing_alg, &claims);
                    insert_event(tx, &stream.config.stream_id, &jti, &set_jwt, self.now).await?;
                    self.made += 1;
                }
            }
            if self.transmitter.tailscale.is_some() {
                queue_tailscale(tx, &t.device_id, t.host.as_deref(), t.current == "compliant", &t.assurance, self.now).await?;
                self.made += 1;
            }
            sqlx::query(
                "INSERT INTO ssf_reported (device_id, owner, host, assurance, status, at, refreshed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (device_id) DO UPDATE SET \
                 owner = excluded.owner, host = excluded.host, assurance = excluded.assurance, \
                 status = excluded.status, at = excluded.at, refreshed_at = excluded.refreshed_at",
            )
            .bind(&t.device_id)
            .bind(&t.owner)
            .bind(&t.host)
            .bind(&t.assurance)
            .bind(t.current)
            .bind(t.at)
            .bind(self.now)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
            Ok(())
        }
    }

    async fn queue_tailscale(
        tx: &mut Tx<'_>,
        device_id: &str,
        host: Option<&str>,
        compliant: bool,
        assurance: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tailscale_queue (device_id, host, compliant, assurance, created_at, next_attempt) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(device_id)
        .bind(host)
        .bind(i64::from(compliant))
        .bind(assurance)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn reported(tx: &mut Tx<'_>, device: &str) -> Result<&'static str, StoreError> {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM ssf_reported WHERE device_id = $1")
                .bind(device)
                .fetch_optional(&mut **tx)
                .await
                .map_err(db)?;
        // A device never announced counts as not compliant (it was denied until now).
        Ok(caep_status(status.as_deref() == Some("compliant")))
    }

    /// One pump (see the module docs of `ssf`); the number of events queued.
    pub async fn pump(
        tx: &mut Tx<'_>,
        server: &Server,
        transmitter: &Transmitter,
        now: i64,
        sweep: bool,
    ) -> Result<usize, StoreError> {
        let streams = {
            let rows = sqlx::query(&format!(
                "SELECT {STREAM_COLUMNS} FROM ssf_streams WHERE status <> 'disabled'"
            ))
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
            rows.iter().map(stream_from_row).collect::<Result<Vec<_>, _>>()?
        };
        let mut fanout = Fanout { transmitter, streams, now, made: 0 };

        // 1. Changes recorded by ingestion, not yet claimed.
        let watermark: i64 = sqlx::query_scalar::<_, String>("SELECT value FROM meta WHERE key = 'ssf_watermark'")
            .fetch_optional(&mut **tx)
            .await
            .map_err(db)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let changes = sqlx::query(
            "SELECT c.id, c.device_id, c.at, c.to_status, d.owner, d.host, d.key_assurance, \
             d.status, d.decision FROM changes c JOIN devices d ON d.id = c.device_id \
             WHERE c.id > $1 AND NOT EXISTS (SELECT 1 FROM ssf_consumed s WHERE s.change_id = c.id) \
             ORDER BY c.id LIMIT 500",
        )
        .bind(watermark)
        .fetch_all(&mut **tx)
        .await
        .map_err(db)?;
        for row in &changes {
            let id: i64 = row.try_get("id").map_err(corrupt)?;
            sqlx::query("INSERT INTO ssf_consumed (change_id, consumed_at) VALUES ($1, $2)")
                .bind(id)
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
            let device_id: String = row.try_get("device_id").map_err(corrupt)?;
            let to: String = row.try_get("to_status").map_err(corrupt)?;
            let current = caep_status(to == "compliant");
            let previous = reported(tx, &device_id).await?;
            if previous == current {
                continue;
            }
            // The reasons are the device's latest decision when it still says the same,
            // else (a later change followed) just the outcome.
            let status: String = row.try_get("status").map_err(corrupt)?;
            let decision: Option<String> = row.try_get("decision").map_err(corrupt)?;
            let failed = match (status == to, decision) {
                (true, Some(d)) => serde_json::from_str::<posture_core::policy::Decision>(&d)
                    .map(|d| d.reasons)
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            let (reason_admin, reason_user) = if failed.is_empty() && current != "compliant" {
                (
                    "the device's evidence failed the policy".to_owned(),
                    "Your device no longer meets the security policy.".to_owned(),
                )
            } else {
                reasons(current, &failed)
            };
            let t = Transition {
                device_id,
                owner: row.try_get("owner").map_err(corrupt)?,
                host: row.try_get("host").map_err(corrupt)?,
                assurance: row.try_get("key_assurance").map_err(corrupt)?,
                previous,
                current,
                at: row.try_get("at").map_err(corrupt)?,
                initiator: "policy",
                reason_admin,
                reason_user,
            };
            fanout.announce(tx, &t).await?;
        }

        if sweep {
            // 2. Transitions without evidence: disabled, enabled, stale, fresh again. A
            // device with a change not claimed yet (on PostgreSQL, committed after step 1
            // read) is left to the next claim, which knows its reasons.
            let fresh_since = now - server.freshness().as_secs() as i64;
            let rows = sqlx::query(
                "SELECT d.id, d.owner, d.key_kind, d.ek_trust, d.key_assurance, d.enrolled_at, \
                 d.disabled, d.host, d.last_seen, d.evidence_iat, d.status, d.decision, \
                 r.status AS reported FROM devices d LEFT JOIN ssf_reported r ON r.device_id = d.id \
                 WHERE (CASE WHEN d.disabled = 0 AND d.status = 'compliant' AND d.evidence_iat >= $1 \
                 THEN 'compliant' ELSE 'not-compliant' END) <> COALESCE(r.status, 'not-compliant') \
                 AND NOT EXISTS (SELECT 1 FROM changes c WHERE c.device_id = d.id AND c.id > $2 \
                 AND NOT EXISTS (SELECT 1 FROM ssf_consumed s WHERE s.change_id = c.id)) \
                 LIMIT 1000",
            )
            .bind(fresh_since)
            .bind(watermark)
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
            for row in &rows {
                let disabled: i64 = row.try_get("disabled").map_err(corrupt)?;
                let device = Device {
                    id: row.try_get("id").map_err(corrupt)?,
                    owner: row.try_get("owner").map_err(corrupt)?,
                    key_kind: row.try_get("key_kind").map_err(corrupt)?,
                    key_record: String::new(),
                    ek_trust: row.try_get("ek_trust").map_err(corrupt)?,
                    key_assurance: row.try_get("key_assurance").map_err(corrupt)?,
                    enrolled_at: row.try_get("enrolled_at").map_err(corrupt)?,
                    disabled: disabled != 0,
                    host: row.try_get("host").map_err(corrupt)?,
                    last_seen: row.try_get("last_seen").map_err(corrupt)?,
                    evidence_iat: row.try_get("evidence_iat").map_err(corrupt)?,
                    status: row.try_get("status").map_err(corrupt)?,
                    failing: Vec::new(),
                    decision_json: row.try_get("decision").map_err(corrupt)?,
                    report_json: None,
                };
                let decision = decide(server, &device, now);
                let current = caep_status(decision.decision == "allow");
                let previous = reported(tx, &device.id).await?;
                if previous == current {
                    continue;
                }
                // Disabled or enabled by an admin; stale, or fresh again, by the system.
                let initiator = if device.disabled { "admin" } else { "system" };
                let (reason_admin, reason_user) = reasons(current, &decision.reasons);
                let t = Transition {
                    device_id: device.id.clone(),
                    owner: device.owner.clone(),
                    host: device.host.clone(),
                    assurance: device.key_assurance.clone(),
                    previous,
                    current,
                    at: now,
                    initiator,
                    reason_admin,
                    reason_user,
                };
                fanout.announce(tx, &t).await?;
            }

            // Deleted devices that were announced compliant.
            let gone = sqlx::query(
                "SELECT r.device_id, r.owner, r.host, r.assurance, r.status FROM ssf_reported r \
                 WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = r.device_id) LIMIT 1000",
            )
            .fetch_all(&mut **tx)
            .await
            .map_err(db)?;
            for row in &gone {
                let device_id: String = row.try_get("device_id").map_err(corrupt)?;
                let status: String = row.try_get("status").map_err(corrupt)?;
                if status == "compliant" {
                    let t = Transition {
                        device_id: device_id.clone(),
                        owner: row.try_get("owner").map_err(corrupt)?,
                        host: row.try_get("host").map_err(corrupt)?,
                        assurance: row.try_get("assurance").map_err(corrupt)?,
                        previous: "compliant",
                        current: "not-compliant",
                        at: now,
                        initiator: "admin",
                        reason_admin: "device_deleted: the device was deleted by an administrator".into(),
                        reason_user: "Your device was removed from the fleet; enrol it again.".into(),
                    };
                    fanout.announce(tx, &t).await?;
                }
                sqlx::query("DELETE FROM ssf_reported WHERE device_id = $1")
                    .bind(&device_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
            }

            // Tailscale attributes expire: refresh those of compliant devices at half-life.
            if let Some(tailscale) = &transmitter.tailscale {
                let before = now - (tailscale.expiry.as_secs() / 2) as i64;
                let stale = sqlx::query(
                    "SELECT device_id, host, assurance FROM ssf_reported \
                     WHERE status = 'compliant' AND refreshed_at < $1 LIMIT 1000",
                )
                .bind(before)
                .fetch_all(&mut **tx)
                .await
                .map_err(db)?;
                for row in &stale {
                    let device_id: String = row.try_get("device_id").map_err(corrupt)?;
                    let host: Option<String> = row.try_get("host").map_err(corrupt)?;
                    let assurance: String = row.try_get("assurance").map_err(corrupt)?;
                    queue_tailscale(tx, &device_id, host.as_deref(), true, &assurance, now).await?;
                    sqlx::query("UPDATE ssf_reported SET refreshed_at = $2 WHERE device_id = $1")
                        .bind(&device_id)
                        .bind(now)
                        .execute(&mut **tx)
                        .await
                        .map_err(db)?;
                    fanout.made += 1;
                }
            }

            // 3. The watermark passes changes claimed long enough ago.
            let claimed_before = now - super::super::SAFETY_WINDOW.as_secs() as i64;
            let passed: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(change_id) FROM ssf_consumed WHERE consumed_at < $1",
            )
            .bind(claimed_before)
            .fetch_one(&mut **tx)
            .await
            .map_err(db)?;
            if let Some(passed) = passed.filter(|p| *p > watermark) {
                sqlx::query("UPDATE meta SET value = $1 WHERE key = 'ssf_watermark'")
                    .bind(passed.to_string())
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                sqlx::query("DELETE FROM ssf_consumed WHERE change_id <= $1")
                    .bind(passed)
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
            }
        }
        Ok(fanout.made)
    }
}

fn method_column(config: &StreamConfig) -> &'static str {
    if config.delivery.method == super::PUSH {
        "push"
    } else {
        "poll"
    }
}

/// Calls `$f` of the module matching the store's pool.
macro_rules! on_pool {
    ($pool:expr, $f:ident ( $($arg:expr),* )) => {
        match $pool {
            Pool::Sqlite(pool) => sqlite::$f(&pool, $($arg),*).await,
            Pool::Postgres(pool) => postgres::$f(&pool, $($arg),*).await,
        }
    };
}

/// Every stream.
pub async fn streams(pool: Pool) -> Result<Vec<Stream>, StoreError> {
    on_pool!(pool, streams())
}

/// One stream.
pub async fn stream(pool: Pool, id: &str) -> Result<Option<Stream>, StoreError> {
    on_pool!(pool, stream(id))
}

/// Records a new stream.
pub async fn insert_stream(pool: Pool, config: &StreamConfig, now: i64) -> Result<(), StoreError> {
    on_pool!(pool, insert_stream(config, now))
}

/// Replaces a stream's configuration; whether it exists.
pub async fn update_stream(pool: Pool, config: &StreamConfig) -> Result<bool, StoreError> {
    on_pool!(pool, update_stream(config))
}

/// Deletes a stream; whether it existed.
pub async fn delete_stream(pool: Pool, id: &str) -> Result<bool, StoreError> {
    on_pool!(pool, delete_stream(id))
}

/// Sets a stream's status; whether it exists.
pub async fn set_status(
    pool: Pool,
    id: &str,
    status: &str,
    reason: Option<&str>,
) -> Result<bool, StoreError> {
    on_pool!(pool, set_status(id, status, reason))
}

/// Removes or adds back subjects.
pub async fn set_excluded(
    pool: Pool,
    id: &str,
    keys: &[String],
    excluded: bool,
) -> Result<(), StoreError> {
    on_pool!(pool, set_excluded(id, keys, excluded))
}

/// Queues a verification SET unless the last one is too recent (`false`).
pub async fn queue_verification(
    pool: Pool,
    id: &str,
    jti: &str,
    set_jwt: &str,
    now: i64,
    min_interval: i64,
) -> Result<bool, StoreError> {
    on_pool!(
        pool,
        queue_verification(id, jti, set_jwt, now, min_interval)
    )
}

/// Acknowledges and fetches SETs of a poll stream.
pub async fn poll(
    pool: Pool,
    id: &str,
    acked: &[String],
    max: i64,
) -> Result<(Vec<(String, String)>, bool), StoreError> {
    on_pool!(pool, poll(id, acked, max))
}

/// Push events due, leased.
pub async fn take_due(pool: Pool, now: i64, lease: i64) -> Result<Vec<Due>, StoreError> {
    on_pool!(pool, take_due(now, lease))
}

/// A delivered or abandoned event.
pub async fn event_done(pool: Pool, id: i64) -> Result<(), StoreError> {
    on_pool!(pool, event_done(id))
}

/// Another try later.
pub async fn event_retry(
    pool: Pool,
    id: i64,
    next_attempt: i64,
    error: &str,
) -> Result<(), StoreError> {
    on_pool!(pool, event_retry(id, next_attempt, error))
}

/// Tailscale updates due, leased.
pub async fn take_tailscale(
    pool: Pool,
    now: i64,
    lease: i64,
) -> Result<Vec<TailscaleDue>, StoreError> {
    on_pool!(pool, take_tailscale(now, lease))
}

/// A sent or abandoned Tailscale update.
pub async fn tailscale_done(pool: Pool, id: i64) -> Result<(), StoreError> {
    on_pool!(pool, tailscale_done(id))
}

/// Another Tailscale try later.
pub async fn tailscale_retry(
    pool: Pool,
    id: i64,
    next_attempt: i64,
    error: &str,
) -> Result<(), StoreError> {
    on_pool!(pool, tailscale_retry(id, next_attempt, error))
}

/// One pump in one transaction, one replica at a time.
pub async fn pump(
    server: &Server,
    transmitter: &Transmitter,
    now: i64,
    sweep: bool,
) -> Result<usize, StoreError> {
    match server.store.pool() {
        Pool::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?;
            let made = sqlite::pump(&mut tx, server, transmitter, now, sweep).await?;
            tx.commit().await.map_err(db)?;
            Ok(made)
        }
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await.map_err(db)?;
            // Replicas pump one at a time (the key is this transmitter's own).
            sqlx::query("SELECT pg_advisory_xact_lock(7027874)")
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let made = postgres::pump(&mut tx, server, transmitter, now, sweep).await?;
            tx.commit().await.map_err(db)?;
            Ok(made)
        }
    }
}
