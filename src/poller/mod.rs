//! The poller: ingestion, from a provider's API to stored records and published events.
//! One module per concern:
//!
//! - [`plan`]: which jobs a connection or a re-pull gets (backfill windows newest first,
//!   recurring polls), and what range a poll covers. Pure.
//! - [`budget`]: the provider's rate limits as budgets shared by every process on the
//!   database, corrected by what the provider reports, paused by its 429s.
//! - [`fetch`]: tokens (refreshed before expiry and once on a 401) and one request.
//! - [`job`]: running one claimed job page by page, and what each error means for it
//!   and for the connection (only a definitive refusal errors a connection).
//! - this module: scheduling. Jobs are claimed polls first, then backfills in the order
//!   they fell due (a backfill goes back in line after each page while budgets are on,
//!   so connections share what is left round-robin), never for a provider whose budget
//!   is known to be spent, and a job that cannot get budget is handed back at once
//!   rather than holding its lease while it waits. A panic in a job fails that job with
//!   the panic's message; the others carry on.
//!
//! The API asks the poller for what it needs through [`plan`] (jobs to queue) and the
//! store (progress); it never reaches into a running poller.

pub mod budget;
pub mod fetch;
pub mod job;
pub mod plan;
pub mod subscribe;

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{watch, Semaphore};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::oauth::OAuthClients;
use crate::seal::Sealer;
use crate::states::JobKind;
use crate::store::{Connection, Job, Store};

use budget::Budgets;
use fetch::Fetcher;

pub struct Poller {
    store: Store,
    fetcher: Fetcher,
    /// `None` when rate limits are off (a benchmark of ingestion, not of the budget).
    budgets: Option<Budgets>,
    concurrency: usize,
    poll_interval: Duration,
    /// How long a claimed job stays reserved; a killed process's jobs run again after it.
    job_lease_ms: i64,
    /// Tries a job gets when it keeps failing before it stops and says so.
    max_attempts: u32,
    /// Signalled when a job ends: finishing a backfill window releases the next one.
    job_ended: tokio::sync::Notify,
    metrics: Arc<Metrics>,
    /// The store's clock: leases, poll intervals, back-offs and budgets run on it.
    clock: Clock,
}

impl Poller {
    pub fn new(
        store: Store,
        sealer: Sealer,
        http: reqwest::Client,
        oauth: OAuthClients,
        cfg: &crate::config::Config,
        metrics: Arc<Metrics>,
    ) -> Poller {
        let clock = store.clock().clone();
        let budgets = cfg.provider_rate_limits.then(|| {
            Budgets::new(
                store.clone(),
                &oauth,
                cfg.rate_limit_time_scale,
                metrics.clone(),
            )
        });
        Poller {
            fetcher: Fetcher {
                store: store.clone(),
                sealer,
                http,
                oauth,
                metrics: metrics.clone(),
                clock: clock.clone(),
            },
            store,
            budgets,
            concurrency: cfg.poller_concurrency.max(1),
            poll_interval: Duration::from_millis(cfg.poll_interval_ms.max(1)),
            job_lease_ms: cfg.job_lease_secs as i64 * 1000,
            max_attempts: cfg.job_max_attempts.max(1),
            job_ended: tokio::sync::Notify::new(),
            metrics,
            clock,
        }
    }

    /// The provider budgets this process spends (`None` when rate limits are off), for
    /// provider requests made outside a job (a connect flow's identity request).
    pub fn budgets(&self) -> Option<&Budgets> {
        self.budgets.as_ref()
    }

    /// Claims due jobs and runs up to `concurrency` of them at once, until `shutdown`.
    ///
    /// Jobs are claimed ahead, a batch at a time (up to twice the concurrency, topped up
    /// when half is left), rather than one claim per finished job: a claim is a write,
    /// and on SQLite every write waits its turn for the single writer. Claimed jobs
    /// not yet started at shutdown are handed back, due now.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let sem = Arc::new(Semaphore::new(self.concurrency));
        // Claimed jobs, each with its connection as read with the claim (`None`: read
        // when the job starts).
        let mut queue: VecDeque<(Job, Option<Connection>)> = VecDeque::new();
        // Whether the last claim may have left due jobs behind (it filled its batch).
        let mut more_due = true;
        let mut ticks = self.clock.ticks();
        while !*shutdown.borrow() {
            // A notification's pull was queued: claim now (pulls come first), whatever
            // is already in line.
            let pulls = self.store.take_jobs_queued();
            if pulls || queue.is_empty() || (more_due && queue.len() <= self.concurrency / 2) {
                let want = (self.concurrency * 2).saturating_sub(queue.len()).max(1);
                let blocked = self
                    .budgets
                    .as_ref()
                    .map(|b| b.blocked())
                    .unwrap_or_default();
                match self
                    .store
                    .claim_jobs(want, self.clock.now_ms() + self.job_lease_ms, &blocked)
                    .await
                {
                    Ok(jobs) => {
                        more_due = jobs.len() == want;
                        // The claimed jobs' connections in one read, not one per job.
                        let mut ids: Vec<_> = jobs.iter().map(|j| j.connection_id).collect();
                        ids.sort();
                        ids.dedup();
                        let conns = match self.store.get_connections(&ids).await {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::warn!(error = %e, "reading the claimed jobs' connections failed; each job reads its own");
                                Default::default()
                            }
                        };
                        let with_conn = |j: Job| {
                            let c = conns.get(&j.connection_id).cloned();
                            (j, c)
                        };
                        // Pulls go to the front of the line.
                        let (pulls, rest): (Vec<Job>, Vec<Job>) =
                            jobs.into_iter().partition(|j| j.kind == JobKind::Pull);
                        for j in pulls.into_iter().rev() {
                            queue.push_front(with_conn(j));
                        }
                        queue.extend(rest.into_iter().map(with_conn));
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed"),
                }
            }
            if queue.is_empty() {
                // Asleep until work may be due: a job ended (releasing the next window),
                // the clock moved, a spent budget frees up, or the idle interval passed.
                let unblock = self
                    .budgets
                    .as_ref()
                    .and_then(|b| b.next_unblock())
                    .map(|t| Duration::from_millis((t - self.clock.now_ms()).max(1) as u64))
                    .unwrap_or(self.poll_interval)
                    .min(self.poll_interval);
                tokio::select! {
                    _ = tokio::time::sleep(unblock) => {}
                    _ = self.job_ended.notified() => {}
                    _ = self.store.jobs_queued() => {}
                    _ = ticks.advanced() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let permit = tokio::select! {
                p = sem.clone().acquire_owned() => p.expect("never closed"),
                _ = self.store.jobs_queued() => continue,
                _ = shutdown.changed() => continue,
            };
            let (job, conn) = queue.pop_front().expect("not empty");
            let this = self.clone();
            tokio::spawn(async move {
                this.run_guarded(job, conn).await;
                drop(permit);
                this.job_ended.notify_one();
            });
        }
        for (job, _) in queue {
            if let Err(e) = self
                .store
                .reschedule_job(&job, self.clock.now_ms(), None)
                .await
            {
                tracing::warn!(error = %e, job = job.id, "handing back a claimed job failed; it runs again when its claim lapses");
            }
        }
        let _ = sem.acquire_many(self.concurrency as u32).await;
    }

    /// Runs one job; a panic fails the job with the panic's message (nothing of the
    /// page it was on is committed: commits happen after parsing) instead of ending the
    /// task silently and leaving the job to be claimed again forever.
    pub async fn run_guarded(&self, mut job: Job, conn: Option<Connection>) {
        let outcome = AssertUnwindSafe(self.run_job(&mut job, conn))
            .catch_unwind()
            .await;
        self.settle(&job, outcome).await;
    }

    /// What a job's run came to: an error is logged (its claim lapses and it runs
    /// again), a panic fails the job with its message and counts in `jobs_failed`.
    pub async fn settle(&self, job: &Job, outcome: std::thread::Result<anyhow::Result<()>>) {
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, job = job.id, "job failed; its claim will lapse and it will run again")
            }
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                let provider = self
                    .store
                    .get_connection(job.connection_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|c| c.provider)
                    .unwrap_or_default();
                tracing::error!(job = job.id, provider, resource = %job.resource, panic = %message, "job panicked; it is failed");
                self.metrics.job_failed(&provider, "panic");
                if let Err(e) = self
                    .store
                    .fail_job(job, &format!("panicked: {message}"))
                    .await
                {
                    tracing::warn!(error = %e, job = job.id, "recording the panic failed; the job runs again when its claim lapses");
                }
            }
        }
    }
}

/// The message a panic carried (`panic!("…")` and `.expect("…")` carry text).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}
