//! The poller: claims due jobs (backfill windows, daily polls) and runs them page by
//! page through the provider's adapter. It owns everything adapters must not: rate
//! limits (app-wide and per user, with `governor`, from the manifest), token refresh
//! (before expiry, and once on a 401), `Retry-After` on 429, back-off on 5xx and
//! timeouts, and committing each page (records, events, cursor) in one transaction.
//! Only a definitive refusal errors a connection; a network blip never does.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{watch, Semaphore};
use uuid::Uuid;

use crate::clock::Clock;
use crate::events::{Envelope, RecordChange};
use crate::metrics::Metrics;
use crate::oauth::{OAuthClients, TokenError};
use crate::providers::{self, Provider, ProviderError, Window};
use crate::seal::{Purpose, Sealer};
use crate::states::{ConnectionErrorType, ConnectionStatus, JobKind};
use crate::store::{
    Connection, EventsFromChanges, Finish, Job, PageCommit, PageEvents, SealedTokens, Store,
};

/// Refresh tokens this long before they expire.
const REFRESH_MARGIN_MS: i64 = 60_000;
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

struct Limits {
    app: DefaultDirectRateLimiter,
    user: DefaultKeyedRateLimiter<Uuid>,
    /// Paused by a 429 until (Unix ms): the app (`Uuid::nil()`) or one user.
    paused: Mutex<HashMap<Uuid, i64>>,
}

fn quota(requests: u32, period_secs: u64) -> Quota {
    let n = NonZeroU32::new(requests.max(1)).expect("at least 1");
    Quota::with_period(Duration::from_secs(period_secs.max(1)) / n.get())
        .expect("non-zero period")
        .allow_burst(n)
}

pub struct Poller {
    store: Store,
    sealer: Sealer,
    http: reqwest::Client,
    oauth: OAuthClients,
    limits: HashMap<String, Limits>,
    concurrency: usize,
    poll_interval: Duration,
    /// How long a claimed job stays reserved; a killed process's jobs run again after it.
    job_lease_ms: i64,
    /// Signalled when a job ends: finishing a backfill window releases the next one.
    job_ended: tokio::sync::Notify,
    metrics: Arc<Metrics>,
    /// The store's clock: leases, poll intervals, back-offs and rate-limit pauses are
    /// computed on it.
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
        let limits = providers::registry()
            .iter()
            .map(|p| {
                let r = &p.manifest.rate_limit;
                let first = |scope| {
                    r.windows
                        .iter()
                        .find(|w| w.scope == scope)
                        .or(r.windows.first())
                        .map(|w| quota(w.requests as u32, w.period_secs))
                        .expect("a manifest has a window")
                };
                let l = Limits {
                    app: RateLimiter::direct(first(providers::RateScope::App)),
                    user: RateLimiter::keyed(first(providers::RateScope::User)),
                    paused: Mutex::new(HashMap::new()),
                };
                (p.id().to_string(), l)
            })
            .collect();
        let clock = store.clock().clone();
        Poller {
            store,
            sealer,
            http,
            oauth,
            limits: if cfg.provider_rate_limits {
                limits
            } else {
                HashMap::new()
            },
            concurrency: cfg.poller_concurrency.max(1),
            poll_interval: Duration::from_millis(200),
            job_lease_ms: cfg.job_lease_secs as i64 * 1000,
            job_ended: tokio::sync::Notify::new(),
            metrics,
            clock,
        }
    }

    /// Claims due jobs and runs up to `concurrency` of them at once, until `shutdown`.
    ///
    /// Jobs are claimed ahead, a batch at a time (up to twice the concurrency, topped up
    /// when half is left), rather than one claim per finished job: a claim is a write,
    /// and on SQLite every write waits its turn for the single writer. Claimed jobs
    /// not yet started at shutdown are handed back, due now.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let sem = Arc::new(Semaphore::new(self.concurrency));
        let mut queue: VecDeque<Job> = VecDeque::new();
        // Whether the last claim may have left due jobs behind (it filled its batch).
        let mut more_due = true;
        let mut ticks = self.clock.ticks();
        while !*shutdown.borrow() {
            if queue.is_empty() || (more_due && queue.len() <= self.concurrency / 2) {
                let want = self.concurrency * 2 - queue.len();
                match self
                    .store
                    .claim_jobs(want, self.clock.now_ms() + self.job_lease_ms)
                    .await
                {
                    Ok(jobs) => {
                        more_due = jobs.len() == want;
                        queue.extend(jobs);
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed"),
                }
            }
            if queue.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(self.poll_interval) => {}
                    _ = self.job_ended.notified() => {}
                    _ = ticks.advanced() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let permit = tokio::select! {
                p = sem.clone().acquire_owned() => p.expect("never closed"),
                _ = shutdown.changed() => continue,
            };
            let job = queue.pop_front().expect("not empty");
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.run_job(job).await {
                    tracing::warn!(error = %e, "job failed; its claim will lapse and it will run again");
                }
                drop(permit);
                this.job_ended.notify_one();
            });
        }
        for job in queue {
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

    /// Waits needed before this user may call this provider, if any.
    fn rate_wait(&self, provider: &str, user: Uuid) -> Option<Duration> {
        let l = self.limits.get(provider)?;
        let now = self.clock.now_ms();
        {
            let paused = l.paused.lock().unwrap();
            let until = paused
                .get(&Uuid::nil())
                .copied()
                .unwrap_or(0)
                .max(paused.get(&user).copied().unwrap_or(0));
            if until > now {
                self.metrics.rate_limit_wait(provider, "paused");
                return Some(Duration::from_millis((until - now) as u64));
            }
        }
        let clock = DefaultClock::default();
        if let Err(nu) = l.user.check_key(&user) {
            self.metrics.rate_limit_wait(provider, "user_limit");
            return Some(nu.wait_time_from(clock.now()));
        }
        if let Err(nu) = l.app.check() {
            self.metrics.rate_limit_wait(provider, "app_limit");
            return Some(nu.wait_time_from(clock.now()));
        }
        None
    }

    fn pause(&self, p: &Provider, user: Uuid, for_: Duration) {
        if let Some(l) = self.limits.get(p.id()) {
            let key = if p.manifest.rate_limit.retry_after_scope == providers::RateScope::App {
                Uuid::nil()
            } else {
                user
            };
            l.paused
                .lock()
                .unwrap()
                .insert(key, self.clock.now_ms() + for_.as_millis() as i64);
        }
    }

    /// A valid access token, refreshed first if it is about to expire.
    async fn access_token(
        &self,
        p: &'static Provider,
        conn: &mut Connection,
        force: bool,
    ) -> Result<String, ProviderError> {
        let expiring = conn
            .token_expires_at
            .map(|t| t - REFRESH_MARGIN_MS <= self.clock.now_ms())
            .unwrap_or(false);
        if force || expiring {
            self.refresh(p, conn).await?;
        }
        self.sealer
            .open(Purpose::ProviderAccessToken, &conn.access_token_sealed)
            .map_err(|e| ProviderError::Refused(e.to_string()))
    }

    /// Refreshes the connection's tokens. One worker spends a single-use refresh token;
    /// the others wait for its result.
    async fn refresh(
        &self,
        p: &'static Provider,
        conn: &mut Connection,
    ) -> Result<(), ProviderError> {
        let transient = |e: sqlx::Error| ProviderError::Transient(e.to_string());
        for _ in 0..50 {
            if self
                .store
                .lock_refresh(conn.id, conn.token_version, 30_000)
                .await
                .map_err(transient)?
            {
                let Some(sealed) = conn.refresh_token_sealed.clone() else {
                    self.store
                        .unlock_refresh(conn.id)
                        .await
                        .map_err(transient)?;
                    return Err(ProviderError::Unauthorized(
                        "the access token expired and the provider gave no refresh token".into(),
                    ));
                };
                let refresh = self
                    .sealer
                    .open(Purpose::ProviderRefreshToken, &sealed)
                    .map_err(|e| ProviderError::Refused(e.to_string()))?;
                match self.oauth.for_provider(p).refresh(&refresh).await {
                    Ok(t) => {
                        let sealed = SealedTokens {
                            access: self.sealer.seal(Purpose::ProviderAccessToken, &t.access),
                            refresh: t
                                .refresh
                                .as_deref()
                                .map(|r| self.sealer.seal(Purpose::ProviderRefreshToken, r)),
                            expires_at: t
                                .expires_in
                                .map(|d| self.clock.now_ms() + d.as_millis() as i64),
                        };
                        self.store
                            .swap_tokens(conn.id, conn.token_version, &sealed)
                            .await
                            .map_err(transient)?;
                        self.metrics.token_refresh(p.id(), "success");
                        tracing::info!(connection = %conn.id, provider = p.id(), "token refreshed");
                    }
                    Err(e) => {
                        self.store
                            .unlock_refresh(conn.id)
                            .await
                            .map_err(transient)?;
                        let outcome = if matches!(e, TokenError::Definitive(_)) {
                            "refused"
                        } else {
                            "transient"
                        };
                        self.metrics.token_refresh(p.id(), outcome);
                        return Err(match e {
                            TokenError::Definitive(m) => {
                                ProviderError::Unauthorized(format!("refresh refused: {m}"))
                            }
                            TokenError::Transient(m) => ProviderError::Transient(m),
                        });
                    }
                }
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let fresh = self
                .store
                .get_connection(conn.id)
                .await
                .map_err(transient)?
                .ok_or_else(|| ProviderError::Refused("connection gone".into()))?;
            if fresh.token_version > conn.token_version {
                *conn = fresh;
                return Ok(());
            }
        }
        Err(ProviderError::Transient(
            "timed out waiting for another worker's token refresh".into(),
        ))
    }

    async fn fetch(
        &self,
        p: &'static Provider,
        base: &str,
        token: &str,
        req: &providers::PageRequest,
    ) -> Result<Vec<u8>, ProviderError> {
        let url = format!("{}{}", base.trim_end_matches('/'), req.path);
        let mut r = if let Some(body) = &req.json {
            self.http.post(&url).json(body)
        } else if req.method == "POST" {
            self.http.post(&url).form(&req.form)
        } else {
            self.http.get(&url)
        };
        r = r.query(&req.query).bearer_auth(token);
        let resp = match r.send().await {
            Ok(resp) => resp,
            Err(e) => {
                self.metrics.provider_request(p.id(), "transport_error");
                return Err(ProviderError::Transient(e.to_string()));
            }
        };
        let status = resp.status().as_u16();
        self.metrics.provider_request(p.id(), &status.to_string());
        let retry_after = crate::http::retry_after(resp.headers());
        let body = resp
            .bytes()
            .await
            .map_err(|e| ProviderError::Transient(e.to_string()))?
            .to_vec();
        if (200..300).contains(&status) {
            match p.adapter.in_band_error(retry_after, &body) {
                Some(e) => Err(e),
                None => Ok(body),
            }
        } else {
            Err(p.adapter.classify_error(status, retry_after, &body))
        }
    }

    /// Runs one job to completion (every page), or until it must wait.
    pub async fn run_job(&self, mut job: Job) -> anyhow::Result<()> {
        let Some(mut conn) = self.store.get_connection(job.connection_id).await? else {
            return Ok(());
        };
        if conn.status != ConnectionStatus::Connected {
            return Ok(());
        }
        let Some(p) = providers::find(&conn.provider) else {
            self.store
                .fail_job(&job, &format!("unknown provider {}", conn.provider))
                .await?;
            return Ok(());
        };
        let Some(spec) = p.resource(job.resource) else {
            self.store
                .fail_job(
                    &job,
                    &format!("{} has no resource {}", p.id(), job.resource),
                )
                .await?;
            return Ok(());
        };
        let base = self.oauth.endpoints(p).base_url;
        let now = self.clock.now_ms();
        let window = if job.kind == JobKind::Poll {
            let lookback = p.manifest.lookback_days as i64 * 86_400_000;
            Window {
                start: utc(now - lookback),
                end: utc(now),
            }
        } else {
            Window {
                start: utc(job.window_start),
                end: utc(job.window_end),
            }
        };
        let mut refreshed = false;
        loop {
            if let Some(wait) = self.rate_wait(p.id(), conn.user_id) {
                self.store
                    .reschedule_job(&job, self.clock.now_ms() + wait.as_millis() as i64, None)
                    .await?;
                return Ok(());
            }
            let req = p.adapter.page_request(spec, &window, job.cursor.as_deref());
            let result = match self.access_token(p, &mut conn, false).await {
                Ok(token) => self.fetch(p, &base, &token, &req).await,
                Err(e) => Err(e),
            };
            let body = match result {
                Ok(b) => b,
                Err(ProviderError::Unauthorized(_)) if !refreshed => {
                    // 401: refresh once and try the page again.
                    refreshed = true;
                    match self.access_token(p, &mut conn, true).await {
                        Ok(_) => continue,
                        Err(e) => return self.handle_error(p, &conn, &job, e).await,
                    }
                }
                Err(e) => return self.handle_error(p, &conn, &job, e).await,
            };
            let page = match p
                .adapter
                .parse_page(job.resource, &body, job.cursor.as_deref())
            {
                Ok(page) => page,
                Err(e) => return self.handle_error(p, &conn, &job, e).await,
            };
            let (finish, fixed) = match (&page.next, job.kind) {
                (Some(next), _) => (
                    Finish::Continue {
                        cursor: next.clone(),
                        lease: self.clock.now_ms() + self.job_lease_ms,
                    },
                    vec![],
                ),
                (None, JobKind::Poll) => {
                    let now = self.clock.now_ms();
                    let next_start = now - p.manifest.lookback_days as i64 * 86_400_000;
                    (
                        Finish::PollDone {
                            next_run_at: now + p.manifest.poll_interval_secs as i64 * 1000,
                            next_window: (next_start, now),
                        },
                        vec![],
                    )
                }
                (None, _) => (
                    Finish::WindowDone,
                    vec![Envelope::historical_chunk(
                        &conn.event_ref(p.event_ref()),
                        job.resource,
                        (utc(job.window_start), utc(job.window_end)),
                        job.chunk_index,
                        job.chunk_count,
                    )],
                ),
            };
            // Polls publish what they find new or changed; backfills store silently.
            let from_changes: Option<EventsFromChanges> = (job.kind == JobKind::Poll).then(|| {
                let conn = conn.event_ref(p.event_ref());
                Arc::new(move |changes: &[RecordChange<'_>]| Envelope::daily(&conn, changes))
                    as EventsFromChanges
            });
            let records = page.records.len();
            let commit = PageCommit::new(
                job.clone(),
                conn.clone(),
                page.records,
                PageEvents {
                    fixed,
                    from_changes,
                },
                finish.clone(),
            );
            let Some(published) = self.store.commit(commit).await? else {
                return Ok(()); // another worker took the job over
            };
            tracing::debug!(
                provider = p.id(), resource = %job.resource, job = job.id, kind = %job.kind, chunk = job.chunk_index,
                records, events = published.events, "page stored"
            );
            match finish {
                Finish::Continue { cursor, lease } => {
                    job.cursor = Some(cursor);
                    job.lease = lease;
                }
                _ => return Ok(()),
            }
        }
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
                let wait = retry_after
                    .unwrap_or(Duration::from_secs(60))
                    .min(MAX_BACKOFF);
                self.pause(p, conn.user_id, wait);
                self.store
                    .reschedule_job(job, self.clock.now_ms() + wait.as_millis() as i64, None)
                    .await?;
            }
            ProviderError::Transient(m) => {
                let backoff = Duration::from_secs(5)
                    .saturating_mul(1u32 << job.attempts.clamp(0, 10) as u32)
                    .min(MAX_BACKOFF);
                self.store
                    .reschedule_job(
                        job,
                        self.clock.now_ms() + backoff.as_millis() as i64,
                        Some(&m),
                    )
                    .await?;
            }
            ProviderError::Malformed { .. } => {
                let m = e.to_string();
                tracing::warn!(provider = p.id(), job = job.id, error = %m, "malformed provider response; job stopped");
                self.store.fail_job(job, &m).await?;
            }
            ProviderError::Unauthorized(m) => {
                self.connection_error(p, conn, ConnectionErrorType::TokenRefreshFailed, &m)
                    .await?
            }
            ProviderError::ScopeNotGranted(m) => {
                self.connection_error(p, conn, ConnectionErrorType::RequiredScopesNotGranted, &m)
                    .await?
            }
            ProviderError::Refused(m) => {
                self.connection_error(p, conn, ConnectionErrorType::ProviderApiError, &m)
                    .await?
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

fn utc(ms: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
