//! The store: the only module that speaks SQL. SQLite (embedded default) and PostgreSQL
//! sit behind one [`Store`], chosen by the URL. Queries are written once where the
//! dialects agree (`$n` placeholders, `ON CONFLICT`, `RETURNING`, `UPDATE … FROM
//! (VALUES …)`); where they do not (claiming work with `FOR UPDATE SKIP LOCKED`) the two
//! texts stand side by side. Work queues are tables; times are Unix milliseconds.
//!
//! SQLite gets a separate one-connection pool for writes: SQLite has one writer at a
//! time anyway, and queueing writers in-process is faster and never hits `SQLITE_BUSY`.
//! Other processes sharing the file wait on `busy_timeout`.

mod budgets;
mod connections;
mod deliveries;
mod endpoints;
mod events;
mod group;
mod introspect;
mod polling;
mod portal;
mod push;
mod tenancy;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::Clock;

pub use budgets::*;
pub use connections::*;
pub use deliveries::*;
pub use endpoints::*;
pub use events::*;
pub use introspect::*;
pub use polling::*;
pub use portal::*;
pub use push::*;
pub use tenancy::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Every migration, embedded at compile time, as (version, name, SQLite text, PostgreSQL
/// text). The files in `migrations/sqlite` and `migrations/postgres` must match this list
/// one to one (a test checks).
pub const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "core",
        include_str!("../../migrations/sqlite/0001_core.sql"),
        include_str!("../../migrations/postgres/0001_core.sql"),
    ),
    (
        2,
        "providers",
        include_str!("../../migrations/sqlite/0002_providers.sql"),
        include_str!("../../migrations/postgres/0002_providers.sql"),
    ),
    (
        3,
        "portal",
        include_str!("../../migrations/sqlite/0003_portal.sql"),
        include_str!("../../migrations/postgres/0003_portal.sql"),
    ),
    (
        4,
        "event_ordering",
        include_str!("../../migrations/sqlite/0004_event_ordering.sql"),
        include_str!("../../migrations/postgres/0004_event_ordering.sql"),
    ),
    (
        5,
        "ingestion",
        include_str!("../../migrations/sqlite/0005_ingestion.sql"),
        include_str!("../../migrations/postgres/0005_ingestion.sql"),
    ),
    (
        6,
        "ordered_claims",
        include_str!("../../migrations/sqlite/0006_ordered_claims.sql"),
        include_str!("../../migrations/postgres/0006_ordered_claims.sql"),
    ),
    (
        7,
        "push",
        include_str!("../../migrations/sqlite/0007_push.sql"),
        include_str!("../../migrations/postgres/0007_push.sql"),
    ),
];

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Reads (and, on PostgreSQL, writes too).
    pool: AnyPool,
    /// Writes: on SQLite a single connection, on PostgreSQL the same pool.
    writer: AnyPool,
    /// Wakes this process's delivery worker when it publishes work.
    work: Arc<Notify>,
    /// Wakes this process's poller when it queues a job that should run now (a pull a
    /// notification caused).
    jobs: Arc<(Notify, std::sync::atomic::AtomicBool)>,
    /// Fetched pages waiting to be committed together (see [`Store::commit`]).
    group: Arc<polling::GroupCommit>,
    /// Takes of rate budget waiting to be made together (see [`Store::take_budget`]).
    budget_group: Arc<budgets::BudgetGroup>,
    /// SQLite: the WAL checkpointer, stopped when the last clone of the store goes.
    _checkpoints: Option<Arc<AbortOnDrop>>,
    /// The "now" that claims compare due times with (see [`Store::with_clock`]).
    clock: Clock,
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// Connects to `url` (`sqlite://…`, created if missing, or `postgres://…`).
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!(
                "unsupported database URL `{}`: use sqlite://PATH or postgres://…",
                redact_url(url)
            );
        };
        match backend {
            Backend::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                let opts = AnyConnectOptions::from_str(&url)
                    .with_context(|| format!("bad database URL {url}"))?;
                let pool = sqlite_pool(opts.clone(), 8, 2).await?;
                let writer = sqlite_pool(opts, 1, 64).await?;
                let checkpoints = Some(Arc::new(AbortOnDrop(
                    tokio::spawn(checkpointer(pool.clone())).abort_handle(),
                )));
                Ok(Store {
                    backend,
                    pool,
                    writer,
                    work: Arc::new(Notify::new()),
                    jobs: Arc::default(),
                    group: Arc::new(polling::GroupCommit::new(1)),
                    budget_group: Arc::new(budgets::BudgetGroup::new(1)),
                    _checkpoints: checkpoints,
                    clock: Clock::real(),
                })
            }
            Backend::Postgres => {
                let opts = AnyConnectOptions::from_str(url).context("bad PostgreSQL URL")?;
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    // No ping on every checkout: it is a round trip before every
                    // statement a checkout makes (a tenth of the ingest pipeline's time
                    // and of a notification's pull). A connection the server dropped
                    // fails its next statement instead and is discarded: a job's claim
                    // lapses and it runs again, a delivery is retried, an API call
                    // answers 500 once.
                    .test_before_acquire(false)
                    .connect_with(opts)
                    .await
                    .with_context(|| format!("connecting to {}", redact_url(url)))?;
                Ok(Store {
                    backend,
                    writer: pool.clone(),
                    pool,
                    work: Arc::new(Notify::new()),
                    jobs: Arc::default(),
                    group: Arc::new(polling::GroupCommit::new(4)),
                    budget_group: Arc::new(budgets::BudgetGroup::new(1)),
                    _checkpoints: None,
                    clock: Clock::real(),
                })
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// This store, claiming work that is due by `clock` (the wall clock unless told
    /// otherwise). The delivery worker and the poller schedule by the clock of the store
    /// they are given, so one clock governs both when work falls due and when it is
    /// found due.
    pub fn with_clock(mut self, clock: Clock) -> Store {
        self.clock = clock;
        self
    }

    /// The clock this store's claims run on.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Applies every pending migration of this backend's dialect.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrations: Vec<Migration> = MIGRATIONS
            .iter()
            .map(|(version, name, sqlite, pg)| {
                let sql = if self.backend == Backend::Sqlite {
                    *sqlite
                } else {
                    *pg
                };
                Migration::new(
                    *version,
                    (*name).into(),
                    MigrationType::Simple,
                    sql.into(),
                    false,
                )
            })
            .collect();
        let migrator = Migrator {
            migrations: migrations.into(),
            ..Migrator::DEFAULT
        };
        migrator
            .run(&self.writer)
            .await
            .context("running migrations")?;
        Ok(())
    }

    /// Wakes a delivery worker of this process: called after committing new work.
    pub(crate) fn notify_work(&self) {
        self.work.notify_waiters();
    }

    /// Resolves when this process publishes new work (or never, if it does not).
    pub async fn work_published(&self) {
        self.work.notified().await
    }

    /// Wakes this process's poller: called after committing jobs due now.
    pub(crate) fn notify_jobs(&self) {
        self.jobs.1.store(true, std::sync::atomic::Ordering::SeqCst);
        self.jobs.0.notify_waiters();
    }

    /// Resolves when this process queues jobs due now.
    pub async fn jobs_queued(&self) {
        self.jobs.0.notified().await
    }

    /// Whether jobs due now were queued since the last call (a poller busy with other
    /// jobs looks before claiming, so a pull never waits behind its queue).
    pub fn take_jobs_queued(&self) -> bool {
        self.jobs.1.swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// `cache_mib`: the page cache of each connection. The writer's is large because
/// inserts into big tables touch index pages all over; readers keep SQLite's default.
async fn sqlite_pool(opts: AnyConnectOptions, max: u32, cache_mib: i64) -> anyhow::Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(60))
        // A file in this process cannot drop the connection the way a server can; the
        // ping sqlx sends on every checkout would be a round trip to the connection's
        // thread for nothing (with one writer, on the path of every write).
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                // WAL lets readers run beside the writer; NORMAL sync keeps every commit
                // across a process crash (only a power cut may lose the last ones).
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = NORMAL",
                    "PRAGMA busy_timeout = 30000",
                    "PRAGMA foreign_keys = ON",
                    // Checkpoints are the checkpointer's (see [`checkpointer`]), not a
                    // committing writer's.
                    "PRAGMA wal_autocheckpoint = 0",
                    // The WAL file is cut back to what the checkpointer lets it reach
                    // when it restarts.
                    "PRAGMA journal_size_limit = 67108864",
                ] {
                    conn.execute(pragma).await?;
                }
                conn.execute(format!("PRAGMA cache_size = -{}", cache_mib * 1024).as_str())
                    .await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .context("opening SQLite database")
}

/// How often the checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL frames (pages, 4 KiB) past which the checkpointer makes the WAL start over.
const WAL_RESTART_FRAMES: i64 = 16_384;

/// Copies committed pages from SQLite's write-ahead log into the database file, on a
/// read connection beside the single writer. Left to SQLite, the copy runs inside
/// whichever commit crosses 1,000 WAL pages, and that commit (with the writer, and every
/// page queued behind it) waits for it: a fifth of the ingest benchmark's time.
///
/// A PASSIVE checkpoint takes no lock a writer needs, so commits go on beside it. But
/// under a steady stream of commits it never finds the WAL wholly copied, and only then
/// does SQLite reuse the WAL from its start: the file would grow for as long as the
/// load lasts. So once the WAL passes [`WAL_RESTART_FRAMES`], a RESTART checkpoint
/// holds writers back for the few pages not yet copied and starts the WAL over (and
/// `journal_size_limit` trims the file).
async fn checkpointer(pool: AnyPool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mode = "PASSIVE";
    loop {
        tick.tick().await;
        let sql = format!("PRAGMA wal_checkpoint({mode})");
        match sqlx::query(&sql).fetch_one(&pool).await {
            // (busy, WAL frames, frames copied); -1 frames when not in WAL mode.
            Ok(row) => {
                let frames: i64 = row.try_get(1).unwrap_or(0);
                mode = if frames > WAL_RESTART_FRAMES {
                    "RESTART"
                } else {
                    "PASSIVE"
                };
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => tracing::warn!(error = %e, mode, "WAL checkpoint failed; retrying"),
        }
    }
}

/// A PostgreSQL deadlock or serialization failure: the transaction was rolled back and
/// may simply be run again.
fn is_transient(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "40P01" || c == "40001")
}

/// Runs the transaction `op` again, up to 5 times and briefly apart, when PostgreSQL
/// rolls it back to break a deadlock (or a serialization failure); any other outcome is
/// returned as it is. For writes that lock many rows in an order the other writers of
/// those rows cannot share.
pub(crate) async fn retry_transient<T, F, Fut>(what: &str, mut op: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        match op().await {
            Err(e) if tries < 5 && is_transient(&e) => {
                tries += 1;
                tracing::debug!(error = %e, tries, "{what} met a deadlock; trying again");
                tokio::time::sleep(Duration::from_millis(20 * tries)).await;
            }
            other => return other,
        }
    }
}

/// A URL fit for logs: the password replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Bind parameters per multi-row statement. Far below the engines' limits on purpose:
/// sqlx binds SQLite parameters by name, and SQLite finds a parameter's name by a linear
/// scan, so binding costs grow with the square of their number (at 3,000 per statement
/// that scan was a fifth of the ingest benchmark's CPU).
pub(crate) const PARAMS_PER_STATEMENT: usize = 400;

/// Rows of `params_per_row` parameters that fit one statement.
pub(crate) const fn rows_per_statement(params_per_row: usize) -> usize {
    PARAMS_PER_STATEMENT / params_per_row
}

/// `$start, $start+1, …` for `n` values: dynamic `IN (…)` and `VALUES` lists.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn get_uuid(row: &AnyRow, col: &str) -> Result<Uuid, sqlx::Error> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(crate) fn get_opt_uuid(row: &AnyRow, col: &str) -> Result<Option<Uuid>, sqlx::Error> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Uuid::parse_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// A column holding one of the typed states' stored text.
pub(crate) fn get_state<T>(row: &AnyRow, col: &str) -> Result<T, sqlx::Error>
where
    T: std::str::FromStr<Err = crate::states::UnknownState>,
{
    let s: String = row.try_get(col)?;
    s.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// An optional column holding one of the typed states' stored text.
pub(crate) fn get_opt_state<T>(row: &AnyRow, col: &str) -> Result<Option<T>, sqlx::Error>
where
    T: std::str::FromStr<Err = crate::states::UnknownState>,
{
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| s.parse().map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

pub(crate) fn get_json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    col: &str,
) -> Result<T, sqlx::Error> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// True when `e` is a unique-constraint violation (a duplicate), on either backend.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_unique_violation(),
        _ => false,
    }
}

/// Creates an empty PostgreSQL database on the server `base_url` points at and returns
/// its URL: every test and benchmark run gets its own.
pub async fn create_scratch_postgres(base_url: &str, prefix: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let name = format!("{prefix}_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::AnyConnection::connect(base_url)
        .await
        .with_context(|| format!("connecting to {}", redact_url(base_url)))?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .context("creating a scratch database")?;
    conn.close().await?;
    let mut url = url::Url::parse(base_url).context("PostgreSQL URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

/// Drops a database made by [`create_scratch_postgres`] (best effort).
pub async fn drop_scratch_postgres(base_url: &str, scratch_url: &str) {
    use sqlx::Connection;
    let Ok(url) = url::Url::parse(scratch_url) else {
        return;
    };
    let name = url.path().trim_start_matches('/').to_string();
    if let Ok(mut conn) = sqlx::AnyConnection::connect(base_url).await {
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await;
        let _ = conn.close().await;
    }
}
