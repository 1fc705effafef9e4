//! Provider budgets: every limit a provider's manifest states, enforced across every
//! process that shares the database and across restarts (the counting lives in
//! `store::budgets`; this module decides what is charged to whom).
//!
//! A request is charged to its provider app's budget (keyed by the app's client id, so
//! teams with their own provider apps get their own) and, where the provider has
//! per-user limits, to the user's, together or not at all. What a provider reports in
//! its headers corrects our count upwards; a 429 pauses the budget it names for every
//! process, until the reset the provider gave (or, without one, until the window has
//! room again). Polls are served before backfills (see `store::Priority`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::oauth::OAuthClients;
use crate::providers::{self, Provider, RateReport, RateScope};
use crate::store::{BudgetSpec, BudgetWindow, Grant, Priority, Store, WaitReason};

/// How long the count of a provider's registered users (Polar's limits grow with it) is
/// reused before it is counted again. Polar itself updates its limits daily.
const REGISTERED_USERS_TTL_MS: i64 = 60_000;

/// Budget taken for one request, until its reply is in.
pub struct Reservation {
    specs: Vec<BudgetSpec>,
    taken: i64,
}

pub struct Budgets {
    store: Store,
    clock: Clock,
    /// Every window's length is divided by this (benchmarks; 1 in production).
    time_scale: f64,
    /// Per provider, the key of its app's budget.
    apps: HashMap<&'static str, String>,
    /// Per provider: (counted at, registered users).
    registered: Mutex<HashMap<&'static str, (i64, u64)>>,
    /// Per provider, until when its app budget is known to be spent (a hint for the
    /// scheduler, so it does not claim work it cannot serve; the store decides).
    blocked: Mutex<HashMap<&'static str, i64>>,
    metrics: Arc<Metrics>,
}

/// The app part of a budget key: the provider and a digest of its client id.
fn app_key(provider: &str, client_id: &str) -> String {
    let digest = Sha256::digest(client_id.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{provider}/{hex}")
}

impl Budgets {
    pub fn new(
        store: Store,
        oauth: &OAuthClients,
        time_scale: f64,
        metrics: Arc<Metrics>,
    ) -> Budgets {
        let apps = providers::registry()
            .iter()
            .map(|p| (p.id(), app_key(p.id(), &oauth.endpoints(p).client_id)))
            .collect();
        let clock = store.clock().clone();
        Budgets {
            store,
            clock,
            time_scale: if time_scale.is_finite() && time_scale > 0.0 {
                time_scale
            } else {
                1.0
            },
            apps,
            registered: Mutex::new(HashMap::new()),
            blocked: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn period_ms(&self, secs: u64) -> i64 {
        ((secs as f64 * 1000.0 / self.time_scale) as i64).max(1)
    }

    /// The app's budget key for `p`.
    pub fn app(&self, p: &Provider) -> String {
        self.apps
            .get(p.id())
            .cloned()
            .unwrap_or_else(|| app_key(p.id(), ""))
    }

    fn user(&self, p: &Provider, user: Uuid) -> String {
        format!("{}/user/{user}", self.app(p))
    }

    async fn registered_users(&self, p: &'static Provider) -> u64 {
        let now = self.clock.now_ms();
        if let Some((at, n)) = self.registered.lock().unwrap().get(p.id()) {
            if now - at < REGISTERED_USERS_TTL_MS {
                return *n;
            }
        }
        match self.store.registered_users(p.id()).await {
            Ok(n) => {
                self.registered.lock().unwrap().insert(p.id(), (now, n));
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, provider = p.id(), "counting registered users failed; budgeting without them");
                0
            }
        }
    }

    /// What a request of `user` to `p` is charged to.
    pub async fn specs(&self, p: &'static Provider, user: Uuid) -> Vec<BudgetSpec> {
        let windows = &p.manifest.rate_limit.windows;
        let growth = windows.iter().any(|w| w.per_registered_user > 0);
        let users = if growth {
            self.registered_users(p).await
        } else {
            0
        };
        let of = |scope: RateScope| -> Vec<BudgetWindow> {
            windows
                .iter()
                .filter(|w| w.scope == scope)
                .map(|w| BudgetWindow {
                    period_ms: self.period_ms(w.period_secs),
                    limit: w.limit(users),
                })
                .collect()
        };
        let mut specs = vec![BudgetSpec {
            key: self.app(p),
            windows: of(RateScope::App),
        }];
        let user_windows = of(RateScope::User);
        // A provider whose 429s pause one user has a row per user even without per-user
        // windows: the pause lives there.
        if !user_windows.is_empty() || p.manifest.rate_limit.retry_after_scope == RateScope::User {
            specs.push(BudgetSpec {
                key: self.user(p, user),
                windows: user_windows,
            });
        }
        specs
    }

    /// Takes one request's budget: the reservation to settle once the reply is in, or
    /// when to come back.
    pub async fn take(
        &self,
        p: &'static Provider,
        user: Uuid,
        priority: Priority,
    ) -> anyhow::Result<Result<Reservation, i64>> {
        let specs = self.specs(p, user).await;
        let now = self.clock.now_ms();
        match self.store.take_budget(&specs, 1, priority, now).await? {
            Grant::Granted => Ok(Ok(Reservation { specs, taken: now })),
            Grant::Wait { until, why } => {
                self.metrics.rate_limit_wait(p.id(), why.as_str());
                if why != WaitReason::Yielding {
                    // Whether it was the app's or a user's budget, the app's is a
                    // good guess only when the provider has no per-user windows.
                    if specs.len() == 1 {
                        self.blocked.lock().unwrap().insert(p.id(), until);
                    }
                }
                Ok(Err(until))
            }
        }
    }

    /// [`Budgets::take`] for a request someone waits on (the identity request of a
    /// connect flow): waits for room, for at most `max_wait`; `None` when none came in
    /// time (the request goes anyway, and a refusal is the provider's to give).
    pub async fn take_waiting(
        &self,
        p: &'static Provider,
        user: Uuid,
        max_wait: Duration,
    ) -> Option<Reservation> {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            match self.take(p, user, Priority::Poll).await {
                Ok(Ok(r)) => return Some(r),
                Ok(Err(until)) => {
                    let wait = Duration::from_millis((until - self.clock.now_ms()).max(1) as u64);
                    let at = (tokio::time::Instant::now() + wait).min(deadline);
                    if at >= deadline {
                        return None;
                    }
                    tokio::time::sleep_until(at).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, provider = p.id(), "taking budget failed");
                    return None;
                }
            }
        }
    }

    /// The reply to a reserved request is in: a request slow to reach the provider is
    /// counted by when it surely had (see `store::BudgetState::settle`).
    pub async fn settle(&self, p: &'static Provider, r: Reservation) {
        let done = self.clock.now_ms();
        if let Err(e) = self.store.settle_budget(&r.specs, r.taken, done).await {
            tracing::warn!(error = %e, provider = p.id(), "settling a slow request's budget failed");
        }
    }

    /// Providers whose app budget is known to be spent now (claim nothing for them).
    pub fn blocked(&self) -> Vec<&'static str> {
        let now = self.clock.now_ms();
        let mut blocked = self.blocked.lock().unwrap();
        blocked.retain(|_, until| *until > now);
        blocked.keys().copied().collect()
    }

    /// When the earliest blocked provider frees up, if any is blocked.
    pub fn next_unblock(&self) -> Option<i64> {
        self.blocked.lock().unwrap().values().copied().min()
    }

    /// Applies what a reply said about the provider's limits: its count corrects ours,
    /// and an exhausted limit with a reset time pauses the app until then.
    pub async fn observe(&self, p: &'static Provider, report: &RateReport) {
        if report.usage.is_empty() {
            return;
        }
        let now = self.clock.now_ms();
        let key = self.app(p);
        let app_windows: Vec<&providers::RateWindow> = p
            .manifest
            .rate_limit
            .windows
            .iter()
            .filter(|w| w.scope == RateScope::App)
            .collect();
        let shortest = app_windows.iter().map(|w| w.period_secs).min();
        for u in &report.usage {
            let Some(period) = u.period_secs.or(shortest) else {
                continue;
            };
            if !app_windows.iter().any(|w| w.period_secs == period) {
                continue;
            }
            let period_ms = self.period_ms(period);
            let short = match self
                .store
                .correct_budget(&key, period_ms, u.used, u.limit, now)
                .await
            {
                Ok(short) => short,
                Err(e) => {
                    tracing::warn!(error = %e, provider = p.id(), "recording the provider's rate-limit usage failed");
                    false
                }
            };
            // A limit the provider says is spent, when we thought it was not (another
            // app of these credentials, say): nothing until the reset it gives. When our
            // count agrees, our own window already knows when room comes back, to the
            // millisecond rather than the second the header rounds to.
            let exhausted = u.limit.is_some_and(|l| u.used >= l);
            if let (true, true, Some(reset)) = (short, exhausted, report.reset_after) {
                let _ = self.pause(p, Uuid::nil(), RateScope::App, reset).await;
            }
        }
    }

    /// Pauses the app's budget (or one user's) for `for_`: a 429 from the provider.
    /// Returns when the pause ends.
    pub async fn pause(
        &self,
        p: &'static Provider,
        user: Uuid,
        scope: RateScope,
        for_: Duration,
    ) -> i64 {
        // The request the provider refused is held back by the pause it starts.
        self.metrics
            .rate_limit_wait(p.id(), WaitReason::Paused.as_str());
        let now = self.clock.now_ms();
        // A wait the provider gave is in its own time, which a benchmark's fixture
        // server already shortens: it is taken as it is.
        let until = now + (for_.as_millis() as i64).max(1);
        let key = match scope {
            RateScope::User => self.user(p, user),
            RateScope::App => {
                self.blocked.lock().unwrap().insert(p.id(), until);
                self.app(p)
            }
        };
        if let Err(e) = self.store.pause_budget(&key, until, now).await {
            tracing::warn!(error = %e, provider = p.id(), "recording a rate-limit pause failed");
        }
        until
    }

    /// How long to pause after a 429 that said nothing about when to come back: one of
    /// the provider's shortest windows, after which it has surely forgotten the burst.
    pub fn default_pause(&self, p: &Provider) -> Duration {
        let secs = p
            .manifest
            .rate_limit
            .windows
            .iter()
            .map(|w| w.period_secs)
            .min()
            .unwrap_or(60)
            .min(3600);
        Duration::from_millis(self.period_ms(secs) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_keys_follow_the_credentials_not_the_process() {
        assert_eq!(app_key("whoop", "a"), app_key("whoop", "a"));
        assert_ne!(app_key("whoop", "a"), app_key("whoop", "b"));
        assert_ne!(app_key("whoop", "a"), app_key("oura", "a"));
        assert!(!app_key("whoop", "secret-client-id").contains("secret"));
    }
}
