//! The delivery worker. One loop claims due deliveries (up to the free concurrency),
//! spawns one send per delivery under a semaphore, and a writer task commits finished
//! attempts in batches, so the database sees a few large transactions instead of many
//! small ones. Any number of workers, in any number of processes, can share a database:
//! claims are exclusive, and a killed worker's claims fall due again when their lease
//! runs out (at-least-once delivery; receivers deduplicate on `webhook-id`).
//!
//! Order is the claim's business: deliveries sharing an ordering key (a connection's
//! backfill chunks of one resource) are claimed one at a time per endpoint, in publish
//! order, so a worker never holds two of them at once and sends what it claims as it
//! comes (see [`Store::claim_deliveries`]).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{mpsc, watch, Semaphore};
use uuid::Uuid;

use super::retry::RetryPolicy;
use super::sender::{Destination, Message, Sender};
use super::signing::Signer;
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::seal::{Purpose, Sealer};
use crate::states::{AttemptTrigger, DeliveryStatus};
use crate::store::{Attempt, Claimed, Completion, Endpoint, Outcome, Store};

/// A prepared destination: (the endpoint's `updated_at`, valid until, destination).
type CachedDestination = (i64, i64, Arc<Destination>);
/// An endpoint's rate limiter, on the scheduling clock.
type EndpointLimiter =
    RateLimiter<NotKeyed, InMemoryState, Clock, NoOpMiddleware<governor::nanos::Nanos>>;

pub struct Worker {
    store: Store,
    sender: Sender,
    sealer: Sealer,
    retry: RetryPolicy,
    concurrency: usize,
    batch: usize,
    lease: Duration,
    poll_interval: Duration,
    disable_after: Duration,
    /// Prepared destinations by endpoint id, valid while `updated_at` matches and until
    /// a rotated-out secret expires.
    destinations: Mutex<HashMap<Uuid, CachedDestination>>,
    limiters: Mutex<HashMap<Uuid, (i64, Arc<EndpointLimiter>)>>,
    metrics: Arc<Metrics>,
    /// The store's clock: retries, leases, rate limits and the disabling cutoff are
    /// computed on it.
    clock: Clock,
}

impl Worker {
    pub fn new(
        store: Store,
        sender: Sender,
        sealer: Sealer,
        cfg: &Config,
        metrics: Arc<Metrics>,
    ) -> Worker {
        let clock = store.clock().clone();
        Worker {
            store,
            sender,
            sealer,
            retry: RetryPolicy::from_secs(&cfg.retry_schedule_secs),
            concurrency: cfg.delivery_concurrency,
            batch: cfg.delivery_batch,
            lease: Duration::from_secs(cfg.delivery_lease_secs),
            poll_interval: Duration::from_millis(cfg.poll_interval_ms),
            disable_after: Duration::from_secs(cfg.disable_after_secs),
            destinations: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            metrics,
            clock,
        }
    }

    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// The destination an endpoint's deliveries go to, with its current secrets.
    pub fn destination(&self, ep: &Endpoint) -> anyhow::Result<Arc<Destination>> {
        let now = self.clock.now_ms();
        let prev_valid =
            ep.previous_secret_sealed.is_some() && ep.previous_secret_expires_at.unwrap_or(0) > now;
        let valid_until = if prev_valid {
            ep.previous_secret_expires_at.unwrap_or(i64::MAX)
        } else {
            i64::MAX
        };
        if let Some((updated, until, d)) = self.destinations.lock().unwrap().get(&ep.id) {
            if *updated == ep.updated_at && now < *until {
                return Ok(d.clone());
            }
        }
        let mut secrets = vec![self
            .sealer
            .open(Purpose::EndpointSecret, &ep.secret_sealed)?];
        if prev_valid {
            secrets.push(self.sealer.open(
                Purpose::EndpointSecret,
                ep.previous_secret_sealed.as_deref().unwrap_or_default(),
            )?);
        }
        let dest = Arc::new(Destination {
            url: ep.url.clone(),
            method: ep.method.clone(),
            headers: ep.headers.clone(),
            signer: Signer::new(secrets.iter().map(String::as_str))?,
        });
        self.destinations
            .lock()
            .unwrap()
            .insert(ep.id, (ep.updated_at, valid_until, dest.clone()));
        Ok(dest)
    }

    /// Whether the endpoint's rate limit lets one more delivery go now; if not, how long
    /// until it does.
    fn rate_wait(&self, ep: &Endpoint) -> Option<Duration> {
        let rate = ep.rate_limit_per_sec.filter(|r| *r > 0)?;
        let limiter = {
            let mut map = self.limiters.lock().unwrap();
            let entry = map
                .entry(ep.id)
                .or_insert_with(|| (0, Arc::new(limiter(rate, &self.clock))));
            if entry.0 != rate {
                *entry = (rate, Arc::new(limiter(rate, &self.clock)));
            }
            entry.1.clone()
        };
        limiter
            .check()
            .err()
            .map(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Runs until `shutdown` turns true, then finishes what is in flight.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let sem = Arc::new(Semaphore::new(self.concurrency));
        let (tx, rx) = mpsc::unbounded_channel::<Completion>();
        let writer = tokio::spawn(self.clone().write_back(rx));
        let mut ticks = self.clock.ticks();
        let mut backoff = Duration::from_millis(100);
        while !*shutdown.borrow() {
            let free = sem.available_permits();
            if free == 0 {
                tokio::select! {
                    p = sem.clone().acquire_owned() => drop(p),
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let lease_until = self.clock.now_ms() + self.lease.as_millis() as i64;
            let claimed = match self
                .store
                .claim_deliveries(free.min(self.batch), lease_until)
                .await
            {
                Ok(c) => {
                    backoff = Duration::from_millis(100);
                    c
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if claimed.is_empty() {
                // Work published in this process wakes us at once, and so does a
                // manual clock moving on; work from other processes and retries falling
                // due are found by polling.
                let notified = self.store.work_published();
                tokio::select! {
                    _ = notified => {}
                    _ = ticks.advanced() => {}
                    _ = tokio::time::sleep(self.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            if let Err(e) = self.dispatch(claimed, &sem, &tx).await {
                tracing::warn!(error = %e, "loading endpoints for claimed deliveries failed; their leases will expire and they will be retried");
                tokio::time::sleep(backoff).await;
            }
        }
        // Let in-flight sends finish, then flush the writer.
        let _ = sem.acquire_many(self.concurrency as u32).await;
        drop(tx);
        let _ = writer.await;
    }

    async fn dispatch(
        self: &Arc<Self>,
        mut claimed: Vec<Claimed>,
        sem: &Arc<Semaphore>,
        tx: &mpsc::UnboundedSender<Completion>,
    ) -> anyhow::Result<()> {
        claimed.sort_by_key(|c| c.id); // publish order
        let mut ids: Vec<Uuid> = claimed.iter().map(|c| c.endpoint_id).collect();
        ids.sort();
        ids.dedup();
        let endpoints: HashMap<Uuid, Endpoint> = self
            .store
            .endpoints_by_id(&ids)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        for c in claimed {
            let open_status = if c.attempts == 0 {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::Retrying
            };
            let ep = match endpoints.get(&c.endpoint_id) {
                Some(ep) if ep.enabled => ep,
                _ => {
                    // Disabled (or deleted) since publishing: stop here; recover re-queues.
                    self.metrics.delivery(DeliveryStatus::Exhausted);
                    let _ = tx.send(Completion::of(
                        &c,
                        DeliveryStatus::Exhausted,
                        self.clock.now_ms(),
                        None,
                    ));
                    continue;
                }
            };
            if let Some(wait) = self.rate_wait(ep) {
                let next = self.clock.now_ms() + wait.as_millis().max(1) as i64;
                let _ = tx.send(Completion::of(&c, open_status, next, None));
                continue;
            }
            let dest = match self.destination(ep) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(endpoint = %ep.id, error = %e, "cannot open the endpoint's secret; is WEARBRIDGE_SECRET_KEY the one it was sealed with?");
                    continue; // the lease expires and it is retried
                }
            };
            let permit = sem
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore is never closed");
            let this = self.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let completion = this.attempt(&c, &dest).await;
                let _ = tx.send(completion);
                drop(permit);
            });
        }
        Ok(())
    }

    async fn attempt(&self, c: &Claimed, dest: &Destination) -> Completion {
        let run_number = c.attempts + 1;
        let id = c.event_id.to_string();
        let msg = Message {
            id: &id,
            payload: &c.payload,
            run_number,
            pending_retries: self.retry.pending_after(run_number),
            trigger: AttemptTrigger::Scheduled,
        };
        self.metrics.deliveries_in_flight.inc();
        let started = std::time::Instant::now();
        let result = self.sender.send(dest, msg).await;
        self.metrics.deliveries_in_flight.dec();
        let outcome = match result.outcome {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Gone => "gone",
        };
        self.metrics
            .attempt(outcome, started.elapsed().as_secs_f64());
        let now = self.clock.now_ms();
        let (status, next) = match result.outcome {
            Outcome::Success => (DeliveryStatus::Succeeded, now),
            Outcome::Gone => (DeliveryStatus::Exhausted, now),
            Outcome::Failure => match self.retry.next_delay(run_number, result.retry_after) {
                Some(d) => (DeliveryStatus::Retrying, now + d.as_millis() as i64),
                None => (DeliveryStatus::Exhausted, now),
            },
        };
        self.metrics.delivery(status);
        Completion::of(c, status, next, Some((result.attempt, result.outcome)))
    }

    /// Commits finished deliveries in batches: whatever has arrived while the previous
    /// commit ran goes into the next one.
    async fn write_back(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Completion>) {
        const MAX_BATCH: usize = 1000;
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            let mut tries = 0;
            loop {
                let cutoff = self.clock.now_ms() - self.disable_after.as_millis() as i64;
                match self.store.complete_deliveries(&batch, cutoff).await {
                    Ok(disabled) => {
                        for ep in disabled {
                            tracing::warn!(endpoint = %ep, "endpoint disabled after failing deliveries");
                        }
                        break;
                    }
                    Err(e) if tries < 5 => {
                        tries += 1;
                        tracing::warn!(error = %e, tries, "writing delivery results failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                    }
                    Err(e) => {
                        // The claims lapse and the deliveries are sent again: at least once.
                        tracing::error!(error = %e, n = batch.len(), "giving up writing delivery results");
                        break;
                    }
                }
            }
        }
    }

    /// A manual attempt of one delivery (resend), logged like any other.
    pub async fn resend(
        &self,
        ep: &Endpoint,
        delivery_id: i64,
        attempts: i64,
        event_id: Uuid,
        payload: &str,
    ) -> anyhow::Result<Attempt> {
        let dest = self.destination(ep)?;
        let id = event_id.to_string();
        let run_number = attempts + 1;
        let msg = Message {
            id: &id,
            payload,
            run_number,
            pending_retries: 0,
            trigger: AttemptTrigger::Manual,
        };
        let result = self.sender.send(&dest, msg).await;
        self.store
            .record_manual_attempt(
                delivery_id,
                &result.attempt,
                result.outcome == Outcome::Success,
            )
            .await?;
        Ok(result.attempt)
    }
}

fn limiter(rate: i64, clock: &Clock) -> EndpointLimiter {
    let r = NonZeroU32::new(rate.clamp(1, u32::MAX as i64) as u32).expect("clamped to at least 1");
    RateLimiter::direct_with_clock(Quota::per_second(r), clock.clone())
}
