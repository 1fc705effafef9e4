//! Running one claimed job: page by page, each paid for from the provider's budget,
//! fetched, parsed by the adapter and committed (records, events, cursor) in one
//! transaction; and what an error means for the job and for the connection. A page may
//! be one step of a chain the adapter drives through its cursor (Polar's transaction:
//! open, list, read each entry, commit): every step is stored before the next request,
//! so a step that makes the provider forget (a commit) follows the storing of what it
//! hands over, and a chain whose cursor is gone (`ProviderError::Gone`) starts over.

use std::sync::Arc;
use std::time::Duration;

use crate::events::{Envelope, RecordChange, RecordRemoval};
use crate::providers::{self, Provider, ProviderError, Window};
use crate::states::{ConnectionErrorType, ConnectionStatus, JobKind};
use crate::store::{
    Connection, EventsFromChanges, EventsFromRemovals, Finish, Job, PageCommit, PageEvents,
    Priority,
};

use super::plan::{self, utc};
use super::Poller;

const MAX_BACKOFF: Duration = Duration::from_secs(3600);

impl Poller {
    /// Runs one job until it is done, must wait (for budget, or after an error), or
    /// (a backfill while budgets are on) has stored one page and goes back in line.
    /// `job` follows the claim as pages are committed. `conn` is the job's connection
    /// if it was read with the claim (a token refreshed since is found by the refresh's
    /// version check); otherwise it is read now.
    pub async fn run_job(&self, job: &mut Job, conn: Option<Connection>) -> anyhow::Result<()> {
        let mut conn = match conn {
            Some(c) => c,
            None => match self.store.get_connection(job.connection_id).await? {
                Some(c) => c,
                None => return Ok(()),
            },
        };
        if conn.status != ConnectionStatus::Connected {
            return Ok(());
        }
        let Some(p) = providers::find(&conn.provider) else {
            self.store
                .fail_job(job, &format!("unknown provider {}", conn.provider))
                .await?;
            return Ok(());
        };
        let Some(spec) = p.resource(job.resource) else {
            self.store
                .fail_job(job, &format!("{} has no resource {}", p.id(), job.resource))
                .await?;
            return Ok(());
        };
        let mut window = if job.kind == JobKind::Poll {
            plan::poll_window(p, self.clock.now_ms())
        } else {
            // A backfill window, or the range a pull's notification named.
            Window {
                start: utc(job.window_start),
                end: utc(job.window_end),
            }
        };
        let priority = match job.kind {
            JobKind::Poll | JobKind::Pull => Priority::Poll,
            JobKind::Backfill => Priority::Backfill,
        };
        // A pull of the one record a notification named costs one request.
        let record_request = match (job.kind, &job.record_key) {
            (JobKind::Pull, Some(key)) => p.adapter.record_request(spec, key),
            _ => None,
        };
        // Where the provider can say which part of a window holds data (Dexcom's
        // `dataRange`), it is asked before the window's first page: a window with
        // nothing in it costs that one request and finishes at once.
        let mut nothing_there = false;
        if job.cursor.is_none() && record_request.is_none() {
            if let Some(req) = p.adapter.range_request(spec, &window) {
                let Some(body) = self.call(p, &mut conn, job, priority, &req).await? else {
                    return Ok(());
                };
                match p.adapter.narrow_window(job.resource, &window, &body) {
                    Ok(Some(w)) => window = w,
                    Ok(None) => nothing_there = true,
                    Err(e) => return self.handle_error(p, &conn, job, e).await,
                }
            }
        }
        loop {
            let page = if std::mem::take(&mut nothing_there) {
                providers::Page {
                    records: vec![],
                    next: None,
                    removals: vec![],
                }
            } else if let Some(req) = &record_request {
                let Some(body) = self.call(p, &mut conn, job, priority, req).await? else {
                    return Ok(());
                };
                match p.adapter.parse_record(job.resource, &body) {
                    Ok(mut page) => {
                        page.next = None;
                        page
                    }
                    Err(e) => return self.handle_error(p, &conn, job, e).await,
                }
            } else {
                let req = p.adapter.page_request(spec, &window, job.cursor.as_deref());
                let Some(body) = self.call(p, &mut conn, job, priority, &req).await? else {
                    return Ok(());
                };
                match p
                    .adapter
                    .parse_page(job.resource, &body, job.cursor.as_deref())
                {
                    Ok(page) => page,
                    Err(e) => return self.handle_error(p, &conn, job, e).await,
                }
            };
            let now = self.clock.now_ms();
            let (finish, fixed) = match (&page.next, job.kind) {
                (Some(next), kind) => {
                    // A backfill goes back in line after each page while budgets are on,
                    // so every connection's backfill gets its turn.
                    let lease = if kind == JobKind::Backfill && self.budgets.is_some() {
                        now
                    } else {
                        now + self.job_lease_ms
                    };
                    (
                        Finish::Continue {
                            cursor: next.clone(),
                            lease,
                        },
                        vec![],
                    )
                }
                (None, JobKind::Poll) => {
                    let w = plan::poll_window(p, now);
                    (
                        Finish::PollDone {
                            next_run_at: plan::next_poll_at(p, now, conn.last_push_at),
                            next_window: (w.start.timestamp_millis(), now),
                        },
                        vec![],
                    )
                }
                (None, JobKind::Pull) => (Finish::PullDone, vec![]),
                // The window is done for the job's resource and for those its pages
                // also bring (Polar's profile, read with body).
                (None, JobKind::Backfill) => (
                    Finish::WindowDone,
                    std::iter::once(job.resource)
                        .chain(
                            p.manifest
                                .resources
                                .iter()
                                .map(|r| r.name)
                                .filter(|r| p.adapter.read_with(*r) == Some(job.resource)),
                        )
                        .filter(|r| r.is_history())
                        .map(|resource| {
                            Envelope::historical_chunk(
                                &conn.event_ref(p.event_ref()),
                                resource,
                                (utc(job.window_start), utc(job.window_end)),
                                job.chunk_index,
                                job.chunk_count,
                            )
                        })
                        .collect(),
                ),
            };
            // Polls and pulls publish what they find new or changed; backfills store
            // silently. A stored record that turns out not to be data any more (a
            // rejected nap) is removed with its `daily.data.<r>.deleted`, whoever finds it.
            // Devices have no history: each is announced when first found, by any job.
            let from_changes: Option<EventsFromChanges> =
                (job.kind != JobKind::Backfill || !job.resource.is_history()).then(|| {
                    let conn = conn.event_ref(p.event_ref());
                    Arc::new(move |changes: &[RecordChange<'_>]| Envelope::daily(&conn, changes))
                        as EventsFromChanges
                });
            let from_removals: EventsFromRemovals = {
                let conn = conn.event_ref(p.event_ref());
                Arc::new(move |removed: &[RecordRemoval]| {
                    removed
                        .iter()
                        .map(|r| Envelope::deleted(&conn, r))
                        .collect()
                })
            };
            let records = page.records.len();
            let commit = PageCommit::new(
                job.clone(),
                conn.clone(),
                page.records,
                PageEvents {
                    fixed,
                    from_changes,
                    from_removals: Some(from_removals),
                },
                finish.clone(),
            )
            .removing(
                page.removals
                    .into_iter()
                    .map(|r| (r.resource, r.provider_id)),
            );
            let Some(published) = self.store.commit(commit).await? else {
                return Ok(()); // another worker took the job over
            };
            tracing::debug!(
                provider = p.id(), resource = %job.resource, job = job.id, kind = %job.kind, chunk = job.chunk_index,
                records, removed = published.removed, events = published.events, "page stored"
            );
            let arrival = match job.kind {
                JobKind::Backfill => "backfill",
                JobKind::Poll => "poll",
                JobKind::Pull => "push",
            };
            self.metrics
                .records_stored(p.id(), arrival, published.created + published.updated);
            match finish {
                Finish::Continue { cursor, lease } => {
                    job.cursor = Some(cursor);
                    job.lease = lease;
                    job.attempts = 0;
                    if lease <= now {
                        return Ok(());
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// One request for `job`: a valid token, the provider's budget, the request, and
    /// what its reply said about the provider's limits. The body on success; `None`
    /// when the job was handed back (no budget, a 429) or its error was dealt with.
    async fn call(
        &self,
        p: &'static Provider,
        conn: &mut Connection,
        job: &Job,
        priority: Priority,
        req: &providers::PageRequest,
    ) -> anyhow::Result<Option<Vec<u8>>> {
        // A path naming the user by the provider's id for them gets the connection's.
        let req = match req.clone().for_user(conn.external_user_id.as_deref()) {
            Ok(r) => r,
            Err(e) => return self.handle_error(p, conn, job, e).await.map(|_| None),
        };
        let mut refreshed = false;
        loop {
            // The token first: a refresh is not a data request, and the budget taken
            // next is spent on the request that follows it at once.
            let token = match self.fetcher.access_token(p, conn, false).await {
                Ok(t) => t,
                Err(e) => return self.handle_error(p, conn, job, e).await.map(|_| None),
            };
            let reservation = match &self.budgets {
                Some(budgets) => match budgets.take(p, conn.user_id, priority).await? {
                    Ok(r) => Some(r),
                    Err(until) => {
                        // Handed back at once: no lease is held while waiting for budget.
                        self.store.reschedule_job(job, until, None).await?;
                        return Ok(None);
                    }
                },
                None => None,
            };
            let (result, report) = self.fetcher.fetch(p, &token, &req).await;
            if let (Some(budgets), Some(r)) = (&self.budgets, reservation) {
                budgets.settle(p, r).await;
                budgets.observe(p, &report).await;
            }
            match result {
                Ok(b) => return Ok(Some(b)),
                Err(ProviderError::Unauthorized(_)) if !refreshed => {
                    // 401: refresh once and try again.
                    refreshed = true;
                    if let Err(e) = self.fetcher.access_token(p, conn, true).await {
                        return self.handle_error(p, conn, job, e).await.map(|_| None);
                    }
                }
                Err(ProviderError::RateLimited { retry_after }) => {
                    let wait = retry_after.or(report.reset_after);
                    return self.rate_limited(p, conn, job, wait).await.map(|_| None);
                }
                Err(e) => return self.handle_error(p, conn, job, e).await.map(|_| None),
            }
        }
    }

    /// A 429 (or its in-band equivalent): the budget it names is paused for every
    /// process until the reset the provider gave, or until the window has room again.
    async fn rate_limited(
        &self,
        p: &'static Provider,
        conn: &Connection,
        job: &Job,
        wait: Option<Duration>,
    ) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let wait = wait.unwrap_or_else(|| {
            self.budgets
                .as_ref()
                .map(|b| b.default_pause(p))
                .unwrap_or(Duration::from_secs(60))
        });
        let wait = wait.min(MAX_BACKOFF);
        let until = match &self.budgets {
            Some(b) => {
                b.pause(
                    p,
                    conn.user_id,
                    p.manifest.rate_limit.retry_after_scope,
                    wait,
                )
                .await
            }
            None => now + wait.as_millis() as i64,
        };
        self.store.reschedule_job(job, until, None).await?;
        Ok(())
    }

    async fn handle_error(
        &self,
        p: &'static Provider,
        conn: &Connection,
        job: &Job,
        e: ProviderError,
    ) -> anyhow::Result<()> {
        match e {
            ProviderError::RateLimited { retry_after } => {
                self.rate_limited(p, conn, job, retry_after).await?
            }
            ProviderError::Transient(m) => {
                let tries = job.attempts + 1;
                if tries >= self.max_attempts as i64 {
                    let m = format!("gave up after {tries} tries: {m}");
                    tracing::warn!(provider = p.id(), job = job.id, error = %m, "job keeps failing");
                    self.metrics.job_failed(p.id(), "gave_up");
                    self.give_up(p, job, &m).await?;
                } else {
                    self.store
                        .reschedule_job(job, self.after_backoff(job), Some(&m))
                        .await?;
                }
            }
            ProviderError::Malformed { .. } => {
                let m = e.to_string();
                tracing::warn!(provider = p.id(), job = job.id, error = %m, "malformed provider response; job stopped");
                self.metrics.job_failed(p.id(), "malformed");
                self.give_up(p, job, &m).await?;
            }
            ProviderError::Unauthorized(m) => {
                self.connection_error(p, conn, ConnectionErrorType::TokenRefreshFailed, &m)
                    .await?
            }
            ProviderError::ScopeNotGranted(m) => {
                self.connection_error(p, conn, ConnectionErrorType::RequiredScopesNotGranted, &m)
                    .await?
            }
            // A pull whose record the provider no longer has (deleted since its
            // notification) ends there; the connection is fine.
            ProviderError::Refused(m) | ProviderError::Gone(m) if job.kind == JobKind::Pull => {
                self.store.fail_job(job, &m).await?
            }
            // The cursor names what the provider no longer has (a transaction that
            // expired while the chain waited): the chain starts over after the usual
            // back-off. Nothing read in it was committed at the provider, so the new
            // chain reads it again, and the stored records' content hashes make that
            // re-read publish nothing.
            ProviderError::Gone(m) if job.cursor.is_some() => {
                tracing::info!(provider = p.id(), job = job.id, error = %m, "the chain's cursor is gone; starting over");
                self.store
                    .restart_job(job, self.after_backoff(job), &m)
                    .await?
            }
            ProviderError::Refused(m) | ProviderError::Gone(m) => {
                self.connection_error(p, conn, ConnectionErrorType::ProviderApiError, &m)
                    .await?
            }
        }
        Ok(())
    }

    /// When a job that failed `job.attempts` times before runs again: 5 s, doubling.
    fn after_backoff(&self, job: &Job) -> i64 {
        let backoff = Duration::from_secs(5)
            .saturating_mul(1u32 << job.attempts.clamp(0, 10) as u32)
            .min(MAX_BACKOFF);
        self.clock.now_ms() + backoff.as_millis() as i64
    }

    /// Stops a job that retrying will not fix, visibly: a backfill window is failed
    /// with its error (and the older windows go on without it); a poll keeps the error
    /// and waits for its next scheduled run.
    async fn give_up(&self, p: &'static Provider, job: &Job, message: &str) -> anyhow::Result<()> {
        match job.kind {
            JobKind::Backfill | JobKind::Pull => self.store.fail_job(job, message).await?,
            JobKind::Poll => {
                let next = plan::next_poll_at(p, self.clock.now_ms(), None);
                self.store.skip_poll(job, next, message).await?
            }
        }
        Ok(())
    }

    async fn connection_error(
        &self,
        p: &Provider,
        conn: &Connection,
        error_type: ConnectionErrorType,
        message: &str,
    ) -> anyhow::Result<()> {
        let event = Envelope::connection_error(&conn.event_ref(p.event_ref()), error_type, message);
        if self
            .store
            .end_connection(
                conn.id,
                ConnectionStatus::Error,
                Some((error_type, message)),
                &event,
            )
            .await?
        {
            tracing::warn!(connection = %conn.id, provider = p.id(), error_type = %error_type, "connection errored");
        }
        Ok(())
    }
}
