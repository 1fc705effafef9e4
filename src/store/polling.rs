//! Polling state: connecting (connection, first jobs and the `provider.connection.created`
//! event in one transaction), the job queue, and committing one fetched page: records
//! upserted by content hash, events published, the job's cursor advanced, all in one
//! transaction, so a killed process resumes with no gap and no duplicate event.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::connections::{Connection, SealedTokens};
use super::events::{publish_in, Published, Target};
use super::{get_uuid, placeholders, Backend, Store};
use crate::events::{Envelope, Resource};
use crate::now_ms;
use crate::providers::Record;

/// `run_at` of a backfill window that waits for the newer one before it: windows of one
/// (connection, resource) run strictly newest first, each released by its predecessor.
pub const AFTER_PREVIOUS_WINDOW: i64 = i64::MAX / 4;

/// A job to insert: one backfill window, or a recurring poll.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub resource: Resource,
    pub window_start: i64,
    pub window_end: i64,
    pub chunk_index: i64,
    pub chunk_count: i64,
    pub run_at: i64,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub connection_id: Uuid,
    pub kind: String,
    pub resource: Resource,
    pub window_start: i64,
    pub window_end: i64,
    pub chunk_index: i64,
    pub chunk_count: i64,
    pub cursor: Option<String>,
    pub attempts: i64,
    /// The `next_run_at` the claim wrote; commits must match it.
    pub lease: i64,
}

/// What to do with a job once its last page is committed.
#[derive(Debug, Clone)]
pub enum Finish {
    /// More pages: store the cursor, keep the claim (extended to `lease`).
    Continue { cursor: String, lease: i64 },
    /// The backfill window is complete; the next (older) one, if any, may start.
    WindowDone,
    /// The poll is complete; run again at `next_run_at` over this window.
    PollDone { next_run_at: i64, next_window: (i64, i64) },
}

/// Counts from one page commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PageCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub events: u64,
    pub deliveries: u64,
}

/// Backfill progress of one (connection, resource).
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub resource: String,
    pub windows_done: i64,
    pub windows_total: i64,
    pub oldest_date_reached: Option<i64>,
    pub last_error: Option<String>,
}

/// The record as stored and as `daily.data.*` events carry it.
pub fn record_data(rec: &Record, id: Uuid, user: Uuid, version: i64) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id.to_string()));
    m.insert("user_id".into(), Value::String(user.to_string()));
    m.insert("provider_id".into(), Value::String(rec.provider_id.clone()));
    m.insert("version".into(), Value::from(version));
    for (k, v) in &rec.fields {
        m.insert(k.clone(), v.clone());
    }
    Value::Object(m)
}

fn content_hash(rec: &Record) -> String {
    let bytes = serde_json::to_vec(&rec.fields).expect("JSON values serialise");
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// When a record happened, for range queries: the first instant or date among its fields.
pub fn record_start(rec: &Record) -> i64 {
    for key in ["time_start", "bedtime_start", "measured_at", "timestamp", "calendar_date"] {
        if let Some(Value::String(s)) = rec.fields.get(key) {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return t.timestamp_millis();
            }
            if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis();
            }
        }
    }
    0
}

async fn insert_jobs(conn: &mut AnyConnection, connection: Uuid, jobs: &[NewJob]) -> Result<(), sqlx::Error> {
    let now = now_ms();
    for j in jobs {
        sqlx::query(
            "INSERT INTO jobs (connection_id, kind, resource, window_start, window_end, chunk_index, chunk_count, status, \
             attempts, next_run_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $9, $9)",
        )
        .bind(connection.to_string())
        .bind(j.kind)
        .bind(j.resource.as_str())
        .bind(j.window_start)
        .bind(j.window_end)
        .bind(j.chunk_index)
        .bind(j.chunk_count)
        .bind(j.run_at)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn job_from(r: &AnyRow, lease: i64) -> Result<Job, sqlx::Error> {
    let resource: String = r.try_get("resource")?;
    Ok(Job {
        id: r.try_get("id")?,
        connection_id: get_uuid(r, "connection_id")?,
        kind: r.try_get("kind")?,
        resource: resource.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        window_start: r.try_get("window_start")?,
        window_end: r.try_get("window_end")?,
        chunk_index: r.try_get("chunk_index")?,
        chunk_count: r.try_get("chunk_count")?,
        cursor: r.try_get("cursor")?,
        attempts: r.try_get("attempts")?,
        lease,
    })
}

impl Store {
    /// Creates (or replaces) a user's connection to a provider with its first jobs and
    /// its `provider.connection.created` event, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_connection(
        &self,
        id: Uuid,
        team: Uuid,
        user: Uuid,
        provider: &str,
        external_user_id: Option<&str>,
        tokens: &SealedTokens,
        jobs: &[NewJob],
        event: &Envelope,
    ) -> Result<Published, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM connections WHERE user_id = $1 AND provider = $2")
            .bind(user.to_string())
            .bind(provider)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO connections (id, team_id, user_id, provider, external_user_id, status, access_token_sealed, \
             refresh_token_sealed, token_expires_at, token_version, refresh_lock_until, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'connected', $6, $7, $8, 0, 0, $9, $9)",
        )
        .bind(id.to_string())
        .bind(team.to_string())
        .bind(user.to_string())
        .bind(provider)
        .bind(external_user_id.map(str::to_string))
        .bind(&tokens.access)
        .bind(tokens.refresh.clone())
        .bind(tokens.expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_jobs(&mut tx, id, jobs).await?;
        let out = publish_in(&mut tx, team, std::slice::from_ref(event), Target::Subscribers).await?;
        tx.commit().await?;
        self.notify_work();
        Ok(out)
    }

    /// Moves a connection to `status` (`error` or `deregistered`), stops its jobs and
    /// publishes `event`, once: a connection already in that state is left alone.
    pub async fn end_connection(
        &self,
        id: Uuid,
        status: &str,
        error: Option<(&str, &str)>,
        event: &Envelope,
    ) -> Result<bool, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let res = sqlx::query(
            "UPDATE connections SET status = $2, error_type = $3, error_message = $4, updated_at = $5 \
             WHERE id = $1 AND status <> $2 AND status <> 'deregistered'",
        )
        .bind(id.to_string())
        .bind(status)
        .bind(error.map(|e| e.0.to_string()))
        .bind(error.map(|e| e.1.to_string()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("UPDATE jobs SET status = 'stopped', updated_at = $2 WHERE connection_id = $1 AND status = 'pending'")
            .bind(id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let team = get_uuid(&sqlx::query("SELECT team_id FROM connections WHERE id = $1").bind(id.to_string()).fetch_one(&mut *tx).await?, "team_id")?;
        publish_in(&mut tx, team, std::slice::from_ref(event), Target::Subscribers).await?;
        tx.commit().await?;
        self.notify_work();
        Ok(true)
    }

    /// Claims up to `limit` due jobs until `lease_until`.
    pub async fn claim_jobs(&self, limit: usize, lease_until: i64) -> Result<Vec<Job>, sqlx::Error> {
        let sql = match self.backend {
            Backend::Postgres => {
                "UPDATE jobs SET next_run_at = $1 WHERE id IN ( \
                   SELECT id FROM jobs WHERE status = 'pending' AND next_run_at <= $2 \
                   ORDER BY next_run_at, chunk_index LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, connection_id, kind, resource, window_start, window_end, chunk_index, chunk_count, cursor, attempts"
            }
            Backend::Sqlite => {
                "UPDATE jobs SET next_run_at = $1 WHERE id IN ( \
                   SELECT id FROM jobs WHERE status = 'pending' AND next_run_at <= $2 \
                   ORDER BY next_run_at, chunk_index LIMIT $3) \
                 RETURNING id, connection_id, kind, resource, window_start, window_end, chunk_index, chunk_count, cursor, attempts"
            }
        };
        let rows = sqlx::query(sql).bind(lease_until).bind(now_ms()).bind(limit as i64).fetch_all(&self.writer).await?;
        rows.iter().map(|r| job_from(r, lease_until)).collect()
    }

    /// Puts a job back for later without progress: rate-limited (`failed` false) or
    /// after an error (`failed` true counts an attempt and records the error).
    pub async fn reschedule_job(&self, job: &Job, run_at: i64, error: Option<&str>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE jobs SET next_run_at = $3, attempts = attempts + $4, last_error = COALESCE($5, last_error), updated_at = $6 \
             WHERE id = $1 AND next_run_at = $2",
        )
        .bind(job.id)
        .bind(job.lease)
        .bind(run_at)
        .bind(if error.is_some() { 1i64 } else { 0 })
        .bind(error.map(str::to_string))
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Gives up on a job (malformed data that retrying will not fix); it stays visible
    /// in the connection's progress with its error.
    pub async fn fail_job(&self, job: &Job, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET status = 'failed', last_error = $3, updated_at = $4 WHERE id = $1 AND next_run_at = $2")
            .bind(job.id)
            .bind(job.lease)
            .bind(error)
            .bind(now_ms())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Commits one fetched page: records (by content hash), events (`daily.*` for
    /// polls, plus whatever `extra_events` the caller built, e.g. the window's
    /// `historical.*`), and the job's next state, in one transaction. Returns None if
    /// the claim was lost (another worker took the job over): nothing is written then.
    pub async fn commit_page(
        &self,
        job: &Job,
        conn: &Connection,
        records: &[Record],
        emit_daily: bool,
        extra_events: &[Envelope],
        finish: &Finish,
    ) -> Result<Option<PageCounts>, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        // The claim check comes first: it is a write, so it also takes SQLite's lock.
        let (sql, new_lease): (&str, i64) = match finish {
            Finish::Continue { lease, .. } => ("UPDATE jobs SET next_run_at = $3, cursor = $4, attempts = 0, last_error = NULL, updated_at = $5 WHERE id = $1 AND next_run_at = $2", *lease),
            Finish::WindowDone => ("UPDATE jobs SET next_run_at = $3, cursor = $4, status = 'done', attempts = 0, last_error = NULL, updated_at = $5 WHERE id = $1 AND next_run_at = $2", now),
            Finish::PollDone { next_run_at, .. } => ("UPDATE jobs SET next_run_at = $3, cursor = $4, attempts = 0, last_error = NULL, updated_at = $5 WHERE id = $1 AND next_run_at = $2", *next_run_at),
        };
        let cursor = match finish {
            Finish::Continue { cursor, .. } => Some(cursor.clone()),
            _ => None,
        };
        let res = sqlx::query(sql).bind(job.id).bind(job.lease).bind(new_lease).bind(cursor).bind(now).execute(&mut *tx).await?;
        if res.rows_affected() == 0 {
            return Ok(None);
        }
        if let Finish::PollDone { next_window, .. } = finish {
            sqlx::query("UPDATE jobs SET window_start = $2, window_end = $3 WHERE id = $1")
                .bind(job.id)
                .bind(next_window.0)
                .bind(next_window.1)
                .execute(&mut *tx)
                .await?;
        }
        if let Finish::WindowDone = finish {
            sqlx::query(
                "UPDATE jobs SET next_run_at = $4 WHERE connection_id = $1 AND resource = $2 AND kind = 'backfill' \
                 AND chunk_index = $3 AND status = 'pending' AND next_run_at = $5",
            )
            .bind(job.connection_id.to_string())
            .bind(job.resource.as_str())
            .bind(job.chunk_index + 1)
            .bind(now)
            .bind(AFTER_PREVIOUS_WINDOW)
            .execute(&mut *tx)
            .await?;
        }

        let mut counts = PageCounts::default();
        let mut events: Vec<Envelope> = extra_events.to_vec();
        // Timeseries samples of one page travel in one event per kind of change.
        let mut series: HashMap<bool, Vec<Value>> = HashMap::new();
        let provider = conn.provider.as_str();
        let ids: Vec<Uuid> = records
            .iter()
            .map(|r| crate::ids::record_id(conn.team_id, conn.user_id, provider, r.resource.as_str(), &r.provider_id))
            .collect();
        let mut known: HashMap<String, (String, i64)> = HashMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!("SELECT id, content_hash, version FROM records WHERE id IN ({})", placeholders(1, chunk.len()));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.to_string());
            }
            for r in q.fetch_all(&mut *tx).await? {
                known.insert(r.try_get("id")?, (r.try_get("content_hash")?, r.try_get("version")?));
            }
        }
        let user = Some((conn.user_id, conn.client_user_id.clone()));
        let mut new_rows: Vec<(Uuid, &Record, String, String)> = Vec::new();
        for (rec, id) in records.iter().zip(&ids) {
            let hash = content_hash(rec);
            let (version, created) = match known.get(&id.to_string()) {
                None => (1, true),
                Some((h, _)) if *h == hash => {
                    counts.unchanged += 1;
                    continue;
                }
                Some((_, v)) => (v + 1, false),
            };
            let data = record_data(rec, *id, conn.user_id, version);
            let text = data.to_string();
            if created {
                counts.created += 1;
                new_rows.push((*id, rec, text, hash));
            } else {
                counts.updated += 1;
                sqlx::query("UPDATE records SET data = $2, content_hash = $3, version = $4, updated_at = $5 WHERE id = $1")
                    .bind(id.to_string())
                    .bind(&text)
                    .bind(&hash)
                    .bind(version)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            if !emit_daily {
                continue;
            }
            if rec.resource.is_timeseries() {
                series.entry(created).or_default().push(data);
                continue;
            }
            let t = if created { crate::events::EventType::DailyCreated(rec.resource) } else { crate::events::EventType::DailyUpdated(rec.resource) };
            let event_id = crate::ids::daily_event_id(&t.name(), *id, version);
            events.push(Envelope::new(event_id, t, conn.team_id, user.clone(), data));
        }
        // New records go in as multi-row inserts: the write lock is held for less.
        for chunk in new_rows.chunks(300) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = 5 + i * 6;
                    format!("(${}, $1, $2, $3, ${}, ${}, ${}, ${}, ${}, 1, $4, $4)", b, b + 1, b + 2, b + 3, b + 4, b + 5)
                })
                .collect();
            let sql = format!(
                "INSERT INTO records (id, team_id, user_id, provider, resource, provider_id, starts_at, data, content_hash, version, created_at, updated_at) \
                 VALUES {} ON CONFLICT (id) DO NOTHING",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(conn.team_id.to_string()).bind(conn.user_id.to_string()).bind(provider).bind(now);
            for (id, rec, text, hash) in chunk {
                q = q.bind(id.to_string()).bind(rec.resource.as_str()).bind(rec.provider_id.clone()).bind(record_start(rec)).bind(text.clone()).bind(hash.clone());
            }
            q.execute(&mut *tx).await?;
        }
        for (created, samples) in series {
            let resource = job.resource;
            let t = if created { crate::events::EventType::DailyCreated(resource) } else { crate::events::EventType::DailyUpdated(resource) };
            // The batch's id is derived from its samples' ids and versions: a replay of
            // the same page yields the same event.
            let key: Vec<String> = samples.iter().map(|s| format!("{}@{}", s["id"].as_str().unwrap_or(""), s["version"])).collect();
            let batch_id = Uuid::new_v5(&crate::ids::NAMESPACE, key.join(",").as_bytes());
            let event_id = crate::ids::daily_event_id(&t.name(), batch_id, 1);
            let source = samples.first().and_then(|s| s.get("source").cloned()).unwrap_or(Value::Null);
            let data: Vec<Value> = samples
                .iter()
                .map(|s| {
                    serde_json::json!({"id": s["id"], "timestamp": s["timestamp"], "timezone_offset": s["timezone_offset"],
                                       "type": s["type"], "unit": s["unit"], "value": s["value"], "version": s["version"]})
                })
                .collect();
            let body = serde_json::json!({"user_id": conn.user_id, "source": source, "data": data});
            events.push(Envelope::new(event_id, t, conn.team_id, user.clone(), body));
        }
        if !events.is_empty() {
            let p = publish_in(&mut tx, conn.team_id, &events, Target::Subscribers).await?;
            counts.events = p.events;
            counts.deliveries = p.deliveries;
        }
        tx.commit().await?;
        if counts.deliveries > 0 {
            self.notify_work();
        }
        Ok(Some(counts))
    }

    /// Runs a user's polls now (`POST /v1/user/{id}/refresh`). Returns how many.
    pub async fn poll_now(&self, team: Uuid, user: Uuid) -> Result<u64, sqlx::Error> {
        let res = sqlx::query(
            "UPDATE jobs SET next_run_at = $3 WHERE kind = 'poll' AND status = 'pending' AND next_run_at > $3 \
             AND connection_id IN (SELECT id FROM connections WHERE team_id = $1 AND user_id = $2 AND status = 'connected')",
        )
        .bind(team.to_string())
        .bind(user.to_string())
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected())
    }

    /// Backfill progress of a connection, per resource.
    pub async fn backfill_progress(&self, connection: Uuid) -> Result<Vec<Progress>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT resource, MAX(chunk_count) AS total, \
             SUM(CASE WHEN status = 'done' THEN 1 ELSE 0 END) AS done, \
             MIN(CASE WHEN status = 'done' THEN window_start ELSE NULL END) AS oldest, \
             MAX(last_error) AS last_error \
             FROM jobs WHERE connection_id = $1 AND kind = 'backfill' GROUP BY resource ORDER BY resource",
        )
        .bind(connection.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Progress {
                    resource: r.try_get("resource")?,
                    windows_total: r.try_get("total")?,
                    windows_done: r.try_get::<Option<i64>, _>("done")?.unwrap_or(0),
                    oldest_date_reached: r.try_get("oldest")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect()
    }

    /// Stored records of a user in `[start, end)`, oldest first.
    pub async fn list_records(
        &self,
        team: Uuid,
        user: Uuid,
        resource: Resource,
        start: i64,
        end: i64,
        provider: Option<&str>,
    ) -> Result<Vec<Value>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT data FROM records WHERE team_id = $1 AND user_id = $2 AND resource = $3 AND starts_at >= $4 AND starts_at < $5 \
             AND ($6 = '' OR provider = $6) ORDER BY starts_at, id",
        )
        .bind(team.to_string())
        .bind(user.to_string())
        .bind(resource.as_str())
        .bind(start)
        .bind(end)
        .bind(provider.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| super::get_json(r, "data")).collect()
    }

    /// When the next pending poll falls due, if any.
    pub async fn next_due_poll(&self) -> Result<Option<i64>, sqlx::Error> {
        let row = sqlx::query("SELECT MIN(next_run_at) AS t FROM jobs WHERE kind = 'poll' AND status = 'pending'").fetch_one(&self.pool).await?;
        row.try_get("t")
    }

    /// Events by type, over the whole database (tests, demo).
    pub async fn event_counts(&self) -> Result<std::collections::BTreeMap<String, i64>, sqlx::Error> {
        let rows = sqlx::query("SELECT event_type, COUNT(*) AS n FROM events GROUP BY event_type").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("event_type")?, r.try_get("n")?))).collect()
    }

    /// Records and events stored, over the whole database (bench).
    pub async fn row_counts(&self) -> Result<(i64, i64), sqlx::Error> {
        let r: i64 = sqlx::query("SELECT COUNT(*) AS n FROM records").fetch_one(&self.pool).await?.try_get("n")?;
        let e: i64 = sqlx::query("SELECT COUNT(*) AS n FROM events").fetch_one(&self.pool).await?.try_get("n")?;
        Ok((r, e))
    }

    /// Jobs by kind and status (tests, bench, demo progress).
    pub async fn job_counts(&self) -> Result<std::collections::BTreeMap<String, i64>, sqlx::Error> {
        let rows = sqlx::query("SELECT kind || ':' || status AS k, COUNT(*) AS n FROM jobs GROUP BY kind, status").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("k")?, r.try_get("n")?))).collect()
    }
}
