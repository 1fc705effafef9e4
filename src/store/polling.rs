//! Polling state: connecting (connection, first jobs and the `provider.connection.created`
//! event in one transaction), the job queue, and committing one fetched page: records
//! upserted by content hash, events published, the job's cursor advanced, all in one
//! transaction, so a killed process resumes with no gap and no duplicate event.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::connections::{Connection, SealedTokens};
use super::events::{publish_in, Published, Target};
use super::{get_state, get_uuid, placeholders, Backend, Store};
use crate::events::{Envelope, Record, RecordChange, RecordRemoval, Resource};
use crate::now_ms;
use crate::states::{ConnectionErrorType, ConnectionStatus, JobKind, JobStatus};

// The states these queries name in their text (see `crate::states`).
const PENDING: &str = JobStatus::Pending.sql();
const DONE: &str = JobStatus::Done.sql();
const FAILED: &str = JobStatus::Failed.sql();
const STOPPED: &str = JobStatus::Stopped.sql();
const BACKFILL: &str = JobKind::Backfill.sql();
const POLL: &str = JobKind::Poll.sql();
const PULL: &str = JobKind::Pull.sql();
const CONNECTED: &str = ConnectionStatus::Connected.sql();
const DEREGISTERED: &str = ConnectionStatus::Deregistered.sql();
const ERROR: &str = ConnectionStatus::Error.sql();

/// `run_at` of a backfill window that waits for the newer one before it: windows of one
/// (connection, resource) run strictly newest first, each released by its predecessor.
pub const AFTER_PREVIOUS_WINDOW: i64 = i64::MAX / 4;

/// A job to insert: one backfill window, or a recurring poll.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub resource: Resource,
    pub window_start: i64,
    pub window_end: i64,
    pub chunk_index: i64,
    pub chunk_count: i64,
    pub run_at: i64,
    /// The re-pull a backfill window belongs to; `None` for the connection's own.
    pub backfill_id: Option<String>,
    /// The one record a pull targets (the provider's id), where its notification named
    /// one.
    pub record_key: Option<String>,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub connection_id: Uuid,
    pub kind: JobKind,
    pub resource: Resource,
    pub window_start: i64,
    pub window_end: i64,
    pub chunk_index: i64,
    pub chunk_count: i64,
    pub cursor: Option<String>,
    pub attempts: i64,
    /// The `next_run_at` the claim wrote; commits must match it.
    pub lease: i64,
    /// A pull's one record (the provider's id), where its notification named one.
    pub record_key: Option<String>,
}

/// What to do with a job once its last page is committed.
#[derive(Debug, Clone)]
pub enum Finish {
    /// More pages: store the cursor, keep the claim (extended to `lease`).
    Continue { cursor: String, lease: i64 },
    /// The backfill window is complete; the next (older) one, if any, may start.
    WindowDone,
    /// The poll is complete; run again at `next_run_at` over this window.
    PollDone {
        next_run_at: i64,
        next_window: (i64, i64),
    },
    /// The pull a notification caused is complete.
    PullDone,
}

/// Builds the events a page publishes from the records it stored anew or changed. It
/// runs inside the page's transaction, so the events land with the records or not at
/// all, and a replay (whose records are unchanged) builds nothing.
pub type EventsFromChanges = Arc<dyn Fn(&[RecordChange<'_>]) -> Vec<Envelope> + Send + Sync>;

/// Builds the events for stored records a page removed (`daily.data.<r>.deleted`), in
/// the page's transaction: a removal of a record never stored builds nothing.
pub type EventsFromRemovals = Arc<dyn Fn(&[RecordRemoval]) -> Vec<Envelope> + Send + Sync>;

/// The events a page publishes, as its caller chose them; the store only persists them.
#[derive(Clone, Default)]
pub struct PageEvents {
    /// Published with the page, before any built from its changes (a completed
    /// window's `historical.data.*`).
    pub fixed: Vec<Envelope>,
    /// Built from what the page's records changed (a poll's `daily.data.*`); `None`
    /// stores the records silently (backfill).
    pub from_changes: Option<EventsFromChanges>,
    /// Built from the stored records the page removed; `None` removes them silently.
    pub from_removals: Option<EventsFromRemovals>,
}

impl std::fmt::Debug for PageEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageEvents")
            .field("fixed", &self.fixed)
            .field("from_changes", &self.from_changes.is_some())
            .field("from_removals", &self.from_removals.is_some())
            .finish()
    }
}

/// One fetched page to commit, with everything its transaction writes. Built with
/// [`PageCommit::new`], which does the per-record work (ids, hashes, JSON) up front, in
/// the job's own task, so the single SQLite writer spends its time writing.
#[derive(Debug, Clone)]
pub struct PageCommit {
    pub job: Job,
    pub conn: Connection,
    records: Vec<Prepared>,
    /// Stable ids of records the page says are not data (any more): deleted with it.
    removals: Vec<Uuid>,
    pub events: PageEvents,
    pub finish: Finish,
}

/// A record ready to store: its stable id, content hash, start and first version's data.
#[derive(Debug, Clone)]
struct Prepared {
    record: Record,
    id: Uuid,
    hash: String,
    start: i64,
    /// The record's data at version 1, and its text: what a new record stores and emits.
    data: Value,
    text: String,
}

impl PageCommit {
    pub fn new(
        job: Job,
        conn: Connection,
        records: Vec<Record>,
        events: PageEvents,
        finish: Finish,
    ) -> PageCommit {
        let records = records
            .into_iter()
            .map(|record| Prepared::new(conn.team_id, conn.user_id, &conn.provider, record))
            .collect();
        PageCommit {
            job,
            conn,
            records,
            removals: Vec::new(),
            events,
            finish,
        }
    }
}

impl PageCommit {
    /// The records the page names as not data (by resource and the provider's key): a
    /// stored one is deleted in the page's transaction.
    pub fn removing(mut self, removals: impl IntoIterator<Item = (Resource, String)>) -> Self {
        let c = &self.conn;
        self.removals = removals
            .into_iter()
            .map(|(resource, key)| {
                crate::ids::record_id(c.team_id, c.user_id, &c.provider, resource.as_str(), &key)
            })
            .collect();
        self
    }
}

impl Prepared {
    /// The per-record work of storing `record` for a user: its stable id, content hash,
    /// start and version-1 JSON.
    fn new(team: Uuid, user: Uuid, provider: &str, record: Record) -> Prepared {
        let id = crate::ids::record_id(
            team,
            user,
            provider,
            record.resource.as_str(),
            &record.provider_id,
        );
        let data = record.data(id, user, 1);
        Prepared {
            id,
            hash: record.content_hash(),
            start: record.starts_at(),
            text: data.to_string(),
            data,
            record,
        }
    }
}

/// One user's records from one provider, prepared as [`PageCommit::new`] prepares a
/// page's (the same ids, hashes and JSON), for [`Store::insert_records`].
#[derive(Debug, Clone)]
pub struct NewRecords {
    team: Uuid,
    user: Uuid,
    provider: String,
    records: Vec<Prepared>,
}

impl NewRecords {
    pub fn new(team: Uuid, user: Uuid, provider: &str, records: Vec<Record>) -> NewRecords {
        NewRecords {
            team,
            user,
            provider: provider.to_string(),
            records: records
                .into_iter()
                .map(|r| Prepared::new(team, user, provider, r))
                .collect(),
        }
    }

    /// Keeps only the records whose id is not in `seen`, and adds theirs to it: a record
    /// a provider repeats (on a window's edge) is stored once.
    pub fn keep_unseen(&mut self, seen: &mut HashSet<Uuid>) {
        self.records.retain(|r| seen.insert(r.id));
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A new record's row: its owner (team, user, provider) and the prepared record.
type NewRow<'a> = (Uuid, Uuid, &'a str, &'a Prepared);

/// The row of `p`, a record of `page`.
fn new_row<'a>(page: &'a PageCommit, p: &'a Prepared) -> NewRow<'a> {
    let c = &page.conn;
    (c.team_id, c.user_id, c.provider.as_str(), p)
}

/// Inserts new records' rows with multi-row statements (created and updated at `now`,
/// version 1); a row whose id is already stored is left as it is. Returns the rows
/// inserted; with `ids`, also adds the id of each to it.
async fn insert_new_rows(
    tx: &mut AnyConnection,
    rows: &[NewRow<'_>],
    now: i64,
    mut ids: Option<&mut HashSet<String>>,
) -> Result<u64, sqlx::Error> {
    let mut inserted = 0;
    for chunk in rows.chunks(super::rows_per_statement(9)) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({}, 1, $1, $1)", placeholders(2 + i * 9, 9)))
            .collect();
        let sql = format!(
            "INSERT INTO records (id, team_id, user_id, provider, resource, provider_id, starts_at, data, content_hash, version, created_at, updated_at) \
             VALUES {} ON CONFLICT (id) DO NOTHING{}",
            values.join(", "),
            if ids.is_some() { " RETURNING id" } else { "" }
        );
        let mut q = sqlx::query(&sql).bind(now);
        for (team, user, provider, p) in chunk {
            q = q
                .bind(p.id.to_string())
                .bind(team.to_string())
                .bind(user.to_string())
                .bind(*provider)
                .bind(p.record.resource.as_str())
                .bind(p.record.provider_id.as_str())
                .bind(p.start)
                .bind(p.text.as_str())
                .bind(p.hash.as_str());
        }
        match ids.as_deref_mut() {
            Some(ids) => {
                for r in q.fetch_all(&mut *tx).await? {
                    ids.insert(r.try_get("id")?);
                    inserted += 1;
                }
            }
            None => inserted += q.execute(&mut *tx).await?.rows_affected(),
        }
    }
    Ok(inserted)
}

/// Group commit of fetched pages (see [`super::group`]): each poller task queues its
/// page, and one transaction commits what is queued, up to these limits. Its leaders:
/// one on SQLite (one writer), several on PostgreSQL (several connections).
pub(crate) type GroupCommit = super::group::Group<PageCommit, Option<PageCounts>>;

/// Pages (and records) a group takes at most, so one transaction stays short.
pub const GROUP_MAX_PAGES: usize = 64;
pub const GROUP_MAX_RECORDS: usize = 4000;

/// How many of the queued pages one group commits.
fn group_size(queued: &[(PageCommit, impl Sized)]) -> usize {
    let (mut n, mut records) = (0, 0);
    while n < queued.len()
        && n < GROUP_MAX_PAGES
        && (n == 0 || records + queued[n].0.records.len() <= GROUP_MAX_RECORDS)
    {
        records += queued[n].0.records.len();
        n += 1;
    }
    n
}

/// Counts from one page commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PageCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub events: u64,
    pub deliveries: u64,
    /// Stored records the page removed.
    pub removed: u64,
}

/// Progress of the latest backfill run of one (connection, resource): the one planned
/// on connect, or the latest re-pull.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub resource: String,
    /// The re-pull this run is; `None` for the backfill planned on connect.
    pub backfill_id: Option<String>,
    pub windows_done: i64,
    pub windows_failed: i64,
    pub windows_total: i64,
    /// Whether windows are still waiting or running.
    pub running: bool,
    /// The run's range, `[start, end)`.
    pub start: i64,
    pub end: i64,
    pub oldest_date_reached: Option<i64>,
    pub last_error: Option<String>,
}

/// Why a re-pull was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepullConflict {
    /// A backfill of these resources is still running.
    Running(Vec<Resource>),
    /// The connection is gone or not connected.
    NotConnected,
}

pub(super) async fn insert_jobs(
    conn: &mut AnyConnection,
    connection: Uuid,
    jobs: &[NewJob],
) -> Result<(), sqlx::Error> {
    let now = now_ms();
    // Multi-row statements: a connection's plan is dozens of windows per resource, and a
    // thousand users connecting at once would otherwise be tens of thousands of round
    // trips. Rows keep their order, so ids rise with it.
    for chunk in jobs.chunks(super::rows_per_statement(9)) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, {}, {PENDING}, 0, $2, $2)", placeholders(3 + i * 9, 9)))
            .collect();
        let sql = format!(
            "INSERT INTO jobs (connection_id, kind, resource, window_start, window_end, chunk_index, chunk_count, \
             next_run_at, backfill_id, record_key, status, attempts, created_at, updated_at) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(connection.to_string()).bind(now);
        for j in chunk {
            q = q
                .bind(j.kind.as_str())
                .bind(j.resource.as_str())
                .bind(j.window_start)
                .bind(j.window_end)
                .bind(j.chunk_index)
                .bind(j.chunk_count)
                .bind(j.run_at)
                .bind(j.backfill_id.clone())
                .bind(j.record_key.clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes stored records by id; returns what each was (resource and last version), for
/// their `daily.data.<r>.deleted` events. Ids not stored are skipped.
pub(super) async fn delete_records(
    conn: &mut AnyConnection,
    ids: &[Uuid],
) -> Result<Vec<RecordRemoval>, sqlx::Error> {
    let mut out = Vec::new();
    for chunk in ids.chunks(super::PARAMS_PER_STATEMENT) {
        let sql = format!(
            "DELETE FROM records WHERE id IN ({}) RETURNING id, resource, version",
            placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            let resource: String = r.try_get("resource")?;
            out.push(RecordRemoval {
                id: get_uuid(&r, "id")?,
                resource: resource
                    .parse()
                    .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
                version: r.try_get("version")?,
            });
        }
    }
    Ok(out)
}

/// Stores each page's progress on its job (cursor, next run, done), for the pages whose
/// claim still holds: the job's `next_run_at` is still the lease the page was fetched
/// under (a job claimed again by another worker since has moved on). One statement per
/// group; returns the ids of the jobs whose claim held.
async fn claim_pages(
    tx: &mut AnyConnection,
    pages: &[PageCommit],
    now: i64,
) -> Result<HashSet<i64>, sqlx::Error> {
    let mut held = HashSet::new();
    for chunk in pages.chunks(super::rows_per_statement(5)) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(2 + i * 5, 5)))
            .collect();
        // `done` says which pages finish their job (a completed window or pull);
        // every other page keeps its job pending.
        let sql = format!(
            "WITH v (id, lease, next_run_at, cursor, done) AS (VALUES {}) \
             UPDATE jobs SET next_run_at = v.next_run_at, cursor = v.cursor, \
               status = CASE WHEN v.done = 1 THEN {DONE} ELSE jobs.status END, \
               attempts = 0, last_error = NULL, updated_at = $1 \
             FROM v WHERE jobs.id = v.id AND jobs.next_run_at = v.lease \
             RETURNING jobs.id",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(now);
        for page in chunk {
            let (next_run_at, cursor, done) = match &page.finish {
                Finish::Continue { lease, cursor } => (*lease, Some(cursor.clone()), 0i64),
                Finish::WindowDone | Finish::PullDone => (now, None, 1),
                Finish::PollDone { next_run_at, .. } => (*next_run_at, None, 0),
            };
            q = q
                .bind(page.job.id)
                .bind(page.job.lease)
                .bind(next_run_at)
                .bind(cursor)
                .bind(done);
        }
        for r in q.fetch_all(&mut *tx).await? {
            held.insert(r.try_get::<i64, _>(0)?);
        }
    }
    Ok(held)
}

/// Makes the window after each of `jobs` (the next older one of its backfill) due at
/// `now`. One statement per group.
async fn release_next_windows(
    conn: &mut AnyConnection,
    jobs: &[&Job],
    now: i64,
) -> Result<(), sqlx::Error> {
    for chunk in jobs.chunks(super::rows_per_statement(3)) {
        if chunk.is_empty() {
            continue;
        }
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(3 + i * 3, 3)))
            .collect();
        // The waiting test sits in the CASE, not the WHERE, so that the WHERE names
        // `jobs_by_connection`'s key and nothing a partial index serves: given
        // `status = 'pending'`, PostgreSQL's planner walks all of `jobs_due` (every
        // pending window of every connection) whenever its statistics are older than
        // the jobs (a thousand users connecting within autovacuum's minute), 40 to 130
        // ms a statement instead of well under one.
        let sql = format!(
            "WITH v (connection_id, resource, chunk_index) AS (VALUES {}) \
             UPDATE jobs SET next_run_at = CASE WHEN jobs.status = {PENDING} AND jobs.next_run_at = $2 \
               THEN $1 ELSE jobs.next_run_at END \
             FROM v WHERE jobs.connection_id = v.connection_id AND jobs.resource = v.resource \
               AND jobs.chunk_index = v.chunk_index AND jobs.kind = {BACKFILL}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(now).bind(AFTER_PREVIOUS_WINDOW);
        for job in chunk {
            q = q
                .bind(job.connection_id.to_string())
                .bind(job.resource.as_str())
                .bind(job.chunk_index + 1);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

fn job_from(r: &AnyRow, lease: i64) -> Result<Job, sqlx::Error> {
    let resource: String = r.try_get("resource")?;
    Ok(Job {
        id: r.try_get("id")?,
        connection_id: get_uuid(r, "connection_id")?,
        kind: get_state(r, "kind")?,
        resource: resource
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
        window_start: r.try_get("window_start")?,
        window_end: r.try_get("window_end")?,
        chunk_index: r.try_get("chunk_index")?,
        chunk_count: r.try_get("chunk_count")?,
        cursor: r.try_get("cursor")?,
        attempts: r.try_get("attempts")?,
        lease,
        record_key: r.try_get("record_key")?,
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
        sqlx::query(&format!(
            "INSERT INTO connections (id, team_id, user_id, provider, external_user_id, status, access_token_sealed, \
             refresh_token_sealed, token_expires_at, token_version, refresh_lock_until, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, {CONNECTED}, $6, $7, $8, 0, 0, $9, $9)",
        ))
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
        let out = publish_in(
            &mut tx,
            team,
            std::slice::from_ref(event),
            Target::Subscribers,
        )
        .await?;
        tx.commit().await?;
        self.notify_work();
        Ok(out)
    }

    /// Moves a connection to `status` (`error` or `deregistered`), stops its jobs and
    /// publishes `event`, once: a connection already in that state is left alone.
    pub async fn end_connection(
        &self,
        id: Uuid,
        status: ConnectionStatus,
        error: Option<(ConnectionErrorType, &str)>,
        event: &Envelope,
    ) -> Result<bool, sqlx::Error> {
        // On PostgreSQL this locks all the connection's pending jobs while page commits
        // may hold some of them (and want the windows they release).
        super::retry_transient("ending a connection", || {
            self.end_connection_once(id, status, error, event)
        })
        .await
    }

    async fn end_connection_once(
        &self,
        id: Uuid,
        status: ConnectionStatus,
        error: Option<(ConnectionErrorType, &str)>,
        event: &Envelope,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        if !end_connection_in(&mut tx, id, status, error, event).await? {
            return Ok(false);
        }
        tx.commit().await?;
        self.notify_work();
        Ok(true)
    }
}

/// [`Store::end_connection`] inside the caller's transaction.
pub(super) async fn end_connection_in(
    tx: &mut AnyConnection,
    id: Uuid,
    status: ConnectionStatus,
    error: Option<(ConnectionErrorType, &str)>,
    event: &Envelope,
) -> Result<bool, sqlx::Error> {
    {
        let now = now_ms();
        let res = sqlx::query(&format!(
            "UPDATE connections SET status = $2, error_type = $3, error_message = $4, updated_at = $5 \
             WHERE id = $1 AND status <> $2 AND status <> {DEREGISTERED}",
        ))
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(error.map(|e| e.0.as_str()))
        .bind(error.map(|e| e.1.to_string()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(&format!(
            "UPDATE jobs SET status = {STOPPED}, updated_at = $2 WHERE connection_id = $1 AND status = {PENDING}"
        ))
        .bind(id.to_string())
        .bind(now)
        .execute(&mut *tx)
            .await?;
        let team = get_uuid(
            &sqlx::query("SELECT team_id FROM connections WHERE id = $1")
                .bind(id.to_string())
                .fetch_one(&mut *tx)
                .await?,
            "team_id",
        )?;
        publish_in(tx, team, std::slice::from_ref(event), Target::Subscribers).await?;
        Ok(true)
    }
}

impl Store {
    /// Claims up to `limit` due jobs until `lease_until`: due pulls first (what a
    /// provider's notification named), then polls (fresh data of connected users never
    /// waits behind backfills), then backfill windows in the order they fell due. Jobs of the providers in `skip` (their budget is spent) stay
    /// where they are.
    pub async fn claim_jobs(
        &self,
        limit: usize,
        lease_until: i64,
        skip: &[&str],
    ) -> Result<Vec<Job>, sqlx::Error> {
        let mut jobs = self.claim_kind(PULL, limit, lease_until, skip).await?;
        if jobs.len() < limit {
            jobs.extend(
                self.claim_kind(POLL, limit - jobs.len(), lease_until, skip)
                    .await?,
            );
        }
        if jobs.len() < limit {
            jobs.extend(
                self.claim_kind(BACKFILL, limit - jobs.len(), lease_until, skip)
                    .await?,
            );
        }
        Ok(jobs)
    }

    async fn claim_kind(
        &self,
        kind: &str,
        limit: usize,
        lease_until: i64,
        skip: &[&str],
    ) -> Result<Vec<Job>, sqlx::Error> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let skipping = if skip.is_empty() {
            String::new()
        } else {
            format!(
                " AND connection_id NOT IN (SELECT id FROM connections WHERE provider IN ({}))",
                placeholders(4, skip.len())
            )
        };
        let sql = format!(
            "UPDATE jobs SET next_run_at = $1 WHERE id IN ( \
               SELECT id FROM jobs WHERE status = {PENDING} AND next_run_at <= $2 AND kind = {kind}{skipping} \
               ORDER BY next_run_at, chunk_index LIMIT $3{lock}) \
             RETURNING id, connection_id, kind, resource, window_start, window_end, chunk_index, chunk_count, cursor, attempts, record_key"
        );
        let mut q = sqlx::query(&sql)
            .bind(lease_until)
            .bind(self.clock.now_ms())
            .bind(limit as i64);
        for p in skip {
            q = q.bind(*p);
        }
        let rows = q.fetch_all(&self.writer).await?;
        rows.iter().map(|r| job_from(r, lease_until)).collect()
    }

    /// Puts a job back for later without progress: rate-limited (`failed` false) or
    /// after an error (`failed` true counts an attempt and records the error).
    pub async fn reschedule_job(
        &self,
        job: &Job,
        run_at: i64,
        error: Option<&str>,
    ) -> Result<(), sqlx::Error> {
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

    /// Puts a job back to start over from its first page, after an error (counted as an
    /// attempt): its cursor names what the provider no longer has (an expired
    /// transaction of a chain of requests).
    pub async fn restart_job(
        &self,
        job: &Job,
        run_at: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE jobs SET next_run_at = $3, cursor = NULL, attempts = attempts + 1, last_error = $4, updated_at = $5 \
             WHERE id = $1 AND next_run_at = $2",
        )
        .bind(job.id)
        .bind(job.lease)
        .bind(run_at)
        .bind(error)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Gives up on a job (malformed data, a panic, too many failed tries); it stays
    /// visible in the connection's progress with its error. A failed backfill window
    /// releases the next one, so one bad window never holds back the rest of the
    /// history.
    pub async fn fail_job(&self, job: &Job, error: &str) -> Result<(), sqlx::Error> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let res = sqlx::query(&format!("UPDATE jobs SET status = {FAILED}, last_error = $3, updated_at = $4 WHERE id = $1 AND next_run_at = $2"))
            .bind(job.id)
            .bind(job.lease)
            .bind(error)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() > 0 && job.kind == JobKind::Backfill {
            release_next_windows(&mut tx, &[job], self.clock.now_ms()).await?;
        }
        tx.commit().await
    }

    /// A poll that keeps failing: keeps its error and runs again at `next_run_at`.
    pub async fn skip_poll(
        &self,
        job: &Job,
        next_run_at: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE jobs SET next_run_at = $3, attempts = 0, last_error = $4, updated_at = $5 \
             WHERE id = $1 AND next_run_at = $2",
        )
        .bind(job.id)
        .bind(job.lease)
        .bind(next_run_at)
        .bind(error)
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Commits one fetched page: see [`Store::commit_pages`]. `None` when the job's
    /// claim was lost (another worker took it over), and nothing was written.
    pub async fn commit_page(
        &self,
        job: &Job,
        conn: &Connection,
        records: &[Record],
        events: PageEvents,
        finish: &Finish,
    ) -> Result<Option<PageCounts>, sqlx::Error> {
        let page = PageCommit::new(
            job.clone(),
            conn.clone(),
            records.to_vec(),
            events,
            finish.clone(),
        );
        Ok(self
            .commit_pages(std::slice::from_ref(&page))
            .await?
            .pop()
            .flatten())
    }

    /// Commits one fetched page together with whatever other pages are waiting (group
    /// commit, see [`GroupCommit`]); the result is this page's alone. A group that
    /// fails is retried page by page, so one bad page never fails the others.
    pub async fn commit(&self, page: PageCommit) -> anyhow::Result<Option<PageCounts>> {
        self.group
            .run(page, group_size, |pages| async move {
                match self.commit_pages(&pages).await {
                    Ok(results) => results.into_iter().map(Ok).collect(),
                    Err(e) if pages.len() == 1 => vec![Err(e.to_string())],
                    Err(_) => {
                        let mut out = Vec::with_capacity(pages.len());
                        for page in &pages {
                            let r = self.commit_pages(std::slice::from_ref(page)).await;
                            out.push(r.map(|mut v| v.pop().flatten()).map_err(|e| e.to_string()));
                        }
                        out
                    }
                }
            })
            .await
            .map_err(anyhow::Error::msg)
    }

    /// Commits fetched pages of several jobs in one transaction (group commit: the
    /// transaction, the record lookups, the inserts and the endpoint matching are paid
    /// once per group, not once per page). Per page: the claim is checked (a page whose
    /// job was taken over writes nothing and gets `None`), records are upserted by
    /// content hash with increasing versions, events and deliveries are published, and
    /// the job's cursor, schedule or completion is stored. All or nothing.
    pub async fn commit_pages(
        &self,
        pages: &[PageCommit],
    ) -> Result<Vec<Option<PageCounts>>, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let mut out: Vec<Option<PageCounts>> = vec![None; pages.len()];
        let mut removal_events: Vec<(usize, Envelope)> = Vec::new();
        // The claim checks come first: they are writes, so they also take SQLite's lock.
        // One statement for the whole group: a page's claim holds when its job still
        // carries the lease it was claimed with.
        let held = claim_pages(&mut tx, pages, now).await?;
        let mut windows_done: Vec<&Job> = Vec::new();
        for (i, page) in pages.iter().enumerate() {
            let (job, finish) = (&page.job, &page.finish);
            if !held.contains(&job.id) {
                continue;
            }
            out[i] = Some(PageCounts::default());
            if !page.removals.is_empty() {
                let removed = delete_records(&mut tx, &page.removals).await?;
                out[i].as_mut().expect("just set").removed += removed.len() as u64;
                if let Some(build) = &page.events.from_removals {
                    removal_events.extend(build(&removed).into_iter().map(|e| (i, e)));
                }
            }
            match finish {
                Finish::PollDone { next_window, .. } => {
                    sqlx::query("UPDATE jobs SET window_start = $2, window_end = $3 WHERE id = $1")
                        .bind(job.id)
                        .bind(next_window.0)
                        .bind(next_window.1)
                        .execute(&mut *tx)
                        .await?;
                }
                Finish::WindowDone => windows_done.push(job),
                Finish::Continue { .. } | Finish::PullDone => {}
            }
        }
        release_next_windows(&mut tx, &windows_done, now).await?;

        // Every record of the claimed pages, with its stable id.
        let claimed: Vec<(usize, &PageCommit)> = pages
            .iter()
            .enumerate()
            .filter(|(i, _)| out[*i].is_some())
            .collect();
        let all: Vec<(usize, &Prepared)> = claimed
            .iter()
            .flat_map(|(i, page)| page.records.iter().map(move |r| (*i, r)))
            .collect();
        // A backfill's records are mostly not stored yet: each whose first appearance
        // in the group is on a backfill page is inserted at once, and only those
        // already there are looked up with the rest (a lookup a window would
        // otherwise cost for nothing). The ids so created are met first at that
        // appearance below.
        let mut stored_now: HashSet<String> = HashSet::new();
        let mut first = HashSet::new();
        let at_once: Vec<NewRow<'_>> = all
            .iter()
            .filter(|(_, p)| first.insert(p.id))
            .filter(|(i, _)| pages[*i].job.kind == JobKind::Backfill)
            .map(|(i, p)| new_row(&pages[*i], p))
            .collect();
        if !at_once.is_empty() {
            insert_new_rows(&mut tx, &at_once, now, Some(&mut stored_now)).await?;
        }
        let to_look_up: Vec<String> = all
            .iter()
            .map(|(_, r)| r.id.to_string())
            .filter(|id| !stored_now.contains(id))
            .collect();
        let mut known: HashMap<String, (String, i64)> = HashMap::new();
        for chunk in to_look_up.chunks(super::PARAMS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, content_hash, version FROM records WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&mut *tx).await? {
                known.insert(
                    r.try_get("id")?,
                    (r.try_get("content_hash")?, r.try_get("version")?),
                );
            }
        }

        // Events per team, in page order.
        let mut events: Vec<(Uuid, Vec<(usize, Envelope)>)> = Vec::new();
        let mut push_event = |team: Uuid, page: usize, e: Envelope| match events
            .iter_mut()
            .find(|(t, _)| *t == team)
        {
            Some((_, v)) => v.push((page, e)),
            None => events.push((team, vec![(page, e)])),
        };
        for (i, e) in removal_events {
            push_event(pages[i].conn.team_id, i, e);
        }
        let mut new_rows: Vec<(&PageCommit, &Prepared)> = Vec::new();
        let mut at = 0;
        for (i, page) in &claimed {
            let counts = out[*i].as_mut().expect("claimed");
            // What this page changed: (record, version, new data when updated).
            let mut changed: Vec<(&Prepared, i64, Option<Value>)> = Vec::new();
            while at < all.len() && all[at].0 == *i {
                let p = all[at].1;
                at += 1;
                let key = p.id.to_string();
                if stored_now.remove(&key) {
                    known.insert(key, (p.hash.clone(), 1));
                    counts.created += 1;
                    changed.push((p, 1, None));
                    continue;
                }
                let version = match known.get(&key) {
                    None => 1,
                    Some((h, _)) if *h == p.hash => {
                        counts.unchanged += 1;
                        continue;
                    }
                    Some((_, v)) => v + 1,
                };
                // A record twice in one group (a page repeated by its provider) counts once.
                known.insert(key, (p.hash.clone(), version));
                if version == 1 {
                    counts.created += 1;
                    new_rows.push((page, p));
                    changed.push((p, 1, None));
                    continue;
                }
                counts.updated += 1;
                let data = p.record.data(p.id, page.conn.user_id, version);
                sqlx::query("UPDATE records SET data = $2, content_hash = $3, version = $4, updated_at = $5 WHERE id = $1")
                    .bind(p.id.to_string())
                    .bind(data.to_string())
                    .bind(&p.hash)
                    .bind(version)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                changed.push((p, version, Some(data)));
            }
            let team = page.conn.team_id;
            for e in &page.events.fixed {
                push_event(team, *i, e.clone());
            }
            if let Some(build) = &page.events.from_changes {
                let changes: Vec<RecordChange<'_>> = changed
                    .iter()
                    .map(|(p, version, data)| RecordChange {
                        id: p.id,
                        resource: p.record.resource,
                        version: *version,
                        created: *version == 1,
                        data: data.as_ref().unwrap_or(&p.data),
                    })
                    .collect();
                for e in build(&changes) {
                    push_event(team, *i, e);
                }
            }
        }

        // New records go in as multi-row inserts: the write lock is held for less.
        let new_rows: Vec<NewRow<'_>> = new_rows.iter().map(|(page, p)| new_row(page, p)).collect();
        insert_new_rows(&mut tx, &new_rows, now, None).await?;
        let mut delivered = false;
        for (team, evs) in events {
            let envelopes: Vec<Envelope> = evs.iter().map(|(_, e)| e.clone()).collect();
            let p = publish_in(&mut tx, team, &envelopes, Target::Subscribers).await?;
            delivered |= p.deliveries > 0;
            // Figures per page: this team's events split by the page that made them.
            for (i, e) in &evs {
                let c = out[*i].as_mut().expect("claimed");
                if let Some(n) = p.fanout.get(&e.id.to_string()) {
                    c.events += 1;
                    c.deliveries += n;
                }
            }
        }
        tx.commit().await?;
        if delivered {
            self.notify_work();
        }
        Ok(out)
    }

    /// Stores new records with nothing else: the multi-row inserts of
    /// [`Store::commit_pages`] without its claim checks, record lookups, events or job
    /// updates, in transactions of at most a group commit's records, with no more
    /// transactions at once than group commits run. What storing the records costs at
    /// least: `bench ingest` measures the pipeline against it. Returns the rows
    /// inserted (a record already stored is left as it is).
    pub async fn insert_records(&self, batches: &[NewRecords]) -> Result<u64, sqlx::Error> {
        let rows: Vec<NewRow<'_>> = batches
            .iter()
            .flat_map(|b| {
                b.records
                    .iter()
                    .map(move |p| (b.team, b.user, b.provider.as_str(), p))
            })
            .collect();
        let mut inserted = 0;
        for chunk in rows.chunks(GROUP_MAX_RECORDS) {
            let _place = self.group.place().await;
            // Concurrent callers inserting the same ids in different orders may deadlock
            // on PostgreSQL.
            inserted += super::retry_transient("inserting records", || async {
                let mut tx = self.writer.begin().await?;
                let n = insert_new_rows(&mut tx, chunk, now_ms(), None).await?;
                tx.commit().await?;
                Ok(n)
            })
            .await?;
        }
        Ok(inserted)
    }

    /// Runs a user's polls now (`POST /v1/user/{id}/refresh`). Returns how many.
    pub async fn poll_now(&self, team: Uuid, user: Uuid) -> Result<u64, sqlx::Error> {
        let res = sqlx::query(&format!(
            "UPDATE jobs SET next_run_at = $3 WHERE kind = {POLL} AND status = {PENDING} AND next_run_at > $3 \
             AND connection_id IN (SELECT id FROM connections WHERE team_id = $1 AND user_id = $2 AND status = {CONNECTED})",
        ))
        .bind(team.to_string())
        .bind(user.to_string())
        .bind(now_ms())
        .execute(&self.writer)
        .await?;
        Ok(res.rows_affected())
    }

    /// Progress of a connection's latest backfill run, per resource.
    pub async fn backfill_progress(&self, connection: Uuid) -> Result<Vec<Progress>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT resource, backfill_id, MAX(id) AS latest, MAX(chunk_count) AS total, \
             SUM(CASE WHEN status = {DONE} THEN 1 ELSE 0 END) AS done, \
             SUM(CASE WHEN status = {FAILED} THEN 1 ELSE 0 END) AS failed, \
             SUM(CASE WHEN status = {PENDING} THEN 1 ELSE 0 END) AS pending, \
             MIN(window_start) AS start, MAX(window_end) AS end_, \
             MIN(CASE WHEN status = {DONE} THEN window_start ELSE NULL END) AS oldest, \
             MAX(last_error) AS last_error \
             FROM jobs WHERE connection_id = $1 AND kind = {BACKFILL} GROUP BY resource, backfill_id",
        ))
        .bind(connection.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut latest: std::collections::BTreeMap<String, (i64, Progress)> = Default::default();
        for r in &rows {
            let id: i64 = r.try_get("latest")?;
            let p = Progress {
                resource: r.try_get("resource")?,
                backfill_id: r.try_get("backfill_id")?,
                windows_total: r.try_get("total")?,
                windows_done: r.try_get::<Option<i64>, _>("done")?.unwrap_or(0),
                windows_failed: r.try_get::<Option<i64>, _>("failed")?.unwrap_or(0),
                running: r.try_get::<Option<i64>, _>("pending")?.unwrap_or(0) > 0,
                start: r.try_get("start")?,
                end: r.try_get("end_")?,
                oldest_date_reached: r.try_get("oldest")?,
                last_error: r.try_get("last_error")?,
            };
            match latest.get(&p.resource) {
                Some((seen, _)) if *seen > id => {}
                _ => {
                    latest.insert(p.resource.clone(), (id, p));
                }
            }
        }
        Ok(latest.into_values().map(|(_, p)| p).collect())
    }

    /// Queues a re-pull's windows on a connected connection, unless a backfill of one
    /// of its resources is still running: checked and queued in one transaction.
    pub async fn queue_repull(
        &self,
        connection: Uuid,
        jobs: &[NewJob],
    ) -> Result<Result<(), RepullConflict>, sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        };
        // The connection's row serialises re-pulls of one connection.
        let status = sqlx::query(&format!(
            "SELECT status FROM connections WHERE id = $1{lock}"
        ))
        .bind(connection.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        match status {
            Some(r)
                if get_state::<ConnectionStatus>(&r, "status")? == ConnectionStatus::Connected => {}
            _ => return Ok(Err(RepullConflict::NotConnected)),
        }
        let mut resources: Vec<Resource> = jobs.iter().map(|j| j.resource).collect();
        resources.sort_by_key(|r| r.as_str());
        resources.dedup();
        let sql = format!(
            "SELECT DISTINCT resource FROM jobs WHERE connection_id = $1 AND kind = {BACKFILL} AND status = {PENDING} \
             AND resource IN ({})",
            placeholders(2, resources.len())
        );
        let mut q = sqlx::query(&sql).bind(connection.to_string());
        for r in &resources {
            q = q.bind(r.as_str());
        }
        let running: Vec<Resource> = q
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .filter_map(|r| r.try_get::<String, _>("resource").ok()?.parse().ok())
            .collect();
        if !running.is_empty() {
            return Ok(Err(RepullConflict::Running(running)));
        }
        insert_jobs(&mut tx, connection, jobs).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Where a new connection of a user to `provider` resumes when the one it replaces
    /// ended in an error: its last successful poll (the oldest of its resources'), or
    /// the end of the newest backfill window it never finished, if that is older.
    /// `None` when there is no such connection.
    pub async fn resume_point(
        &self,
        team: Uuid,
        user: Uuid,
        provider: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT MIN(j.window_end) AS t FROM jobs j JOIN connections c ON c.id = j.connection_id \
             WHERE c.team_id = $1 AND c.user_id = $2 AND c.provider = $3 AND c.status = {ERROR} \
             AND (j.kind = {POLL} OR j.status <> {DONE})",
        ))
        .bind(team.to_string())
        .bind(user.to_string())
        .bind(provider)
        .fetch_one(&self.pool)
        .await?;
        row.try_get("t")
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
        let row = sqlx::query(&format!(
            "SELECT MIN(next_run_at) AS t FROM jobs WHERE kind = {POLL} AND status = {PENDING}",
        ))
        .fetch_one(&self.pool)
        .await?;
        row.try_get("t")
    }

    /// Events by type, over the whole database (tests, demo).
    pub async fn event_counts(
        &self,
    ) -> Result<std::collections::BTreeMap<String, i64>, sqlx::Error> {
        let rows = sqlx::query("SELECT event_type, COUNT(*) AS n FROM events GROUP BY event_type")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("event_type")?, r.try_get("n")?)))
            .collect()
    }

    /// Writes what is committed into the database files (a benchmark's setup, before
    /// it measures): PostgreSQL's `CHECKPOINT`, SQLite's WAL copied back and truncated.
    pub async fn checkpoint(&self) -> Result<(), sqlx::Error> {
        let sql = match self.backend {
            Backend::Postgres => "CHECKPOINT",
            Backend::Sqlite => "PRAGMA wal_checkpoint(TRUNCATE)",
        };
        sqlx::query(sql).execute(&self.writer).await.map(|_| ())
    }

    /// Records and events stored, over the whole database (bench).
    pub async fn row_counts(&self) -> Result<(i64, i64), sqlx::Error> {
        let r: i64 = sqlx::query("SELECT COUNT(*) AS n FROM records")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let e: i64 = sqlx::query("SELECT COUNT(*) AS n FROM events")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok((r, e))
    }

    /// Jobs due to run at `now`, per provider (windows waiting on their predecessor are
    /// not due).
    pub async fn jobs_due_by_provider(&self, now: i64) -> Result<Vec<(String, i64)>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT c.provider AS provider, COUNT(*) AS n FROM jobs j JOIN connections c ON c.id = j.connection_id \
             WHERE j.status = {PENDING} AND j.next_run_at <= $1 GROUP BY c.provider",
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("provider")?, r.try_get("n")?)))
            .collect()
    }

    /// Backfill windows still to run, over the whole database (bench): read through the
    /// due index, cheap enough to ask often while a backfill runs.
    pub async fn backfill_windows_pending(&self) -> Result<i64, sqlx::Error> {
        sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM jobs WHERE status = {PENDING} AND kind = {BACKFILL}"
        ))
        .fetch_one(&self.pool)
        .await?
        .try_get("n")
    }

    /// Jobs by kind and status (tests, bench, demo progress).
    pub async fn job_counts(
        &self,
    ) -> Result<std::collections::BTreeMap<(JobKind, JobStatus), i64>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let key = (get_state(r, "kind")?, get_state(r, "status")?);
                Ok((key, r.try_get("n")?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_is_the_literal_the_due_index_is_declared_with() {
        let predicate = format!("WHERE status = {PENDING};");
        for migration in [
            include_str!("../../migrations/sqlite/0002_providers.sql"),
            include_str!("../../migrations/postgres/0002_providers.sql"),
        ] {
            assert!(migration.contains(&predicate), "jobs_due: {predicate}");
        }
    }
}
