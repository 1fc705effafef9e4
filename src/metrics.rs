//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! Counters and the latency histogram belong to this process (the worker and poller
//! bump them as they work); the backlog gauges (due deliveries, due jobs per provider)
//! are read from the database at scrape time, so every process sharing one database
//! reports the same backlog. One registry per gateway, not a global recorder: a test
//! process runs many gateways side by side.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::states::DeliveryStatus;
use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderStatusLabels {
    pub provider: String,
    /// The HTTP status, or `transport_error` when no reply came.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderReasonLabels {
    pub provider: String,
    /// `limit` (a budget window is full), `paused` (after a 429), `yielding` (a
    /// backfill letting waiting polls go first); for failed jobs: `panic`, `malformed`,
    /// `gave_up`.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderOutcomeLabels {
    pub provider: String,
    /// Token refreshes: `success`, `refused` (the user must reconnect) or `transient`.
    /// Notifications: what each caused (`pulled`, `deleted`, `deauthorized`,
    /// `ignored`, `unknown_user`, `duplicate`) or why it was refused (`unverified`,
    /// `malformed`).
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderArrivalLabels {
    pub provider: String,
    /// How the records came: `backfill`, `poll`, or `push` (a pull a notification
    /// caused).
    pub arrival: String,
}

/// Label values known in advance. Their counters exist, at 0, from the start, so every
/// family is on the first scrape and the first increment is an increase that `rate()`
/// and `increase()` can see (a series that appears at 1 has no increase to show).
/// The states a delivery reaches after an attempt (pending is where it starts).
const DELIVERY_OUTCOMES: &[DeliveryStatus] = &[
    DeliveryStatus::Succeeded,
    DeliveryStatus::Retrying,
    DeliveryStatus::Exhausted,
];
const ATTEMPT_OUTCOMES: &[&str] = &["success", "failure", "gone"];
const RATE_LIMIT_REASONS: &[&str] = &["limit", "paused", "yielding"];
const JOB_FAILURES: &[&str] = &["panic", "malformed", "gave_up"];
const TOKEN_REFRESH_OUTCOMES: &[&str] = &["success", "refused", "transient"];
const NOTIFICATION_OUTCOMES: &[&str] = &[
    "pulled",
    "deleted",
    "deauthorized",
    "ignored",
    "unknown_user",
    "duplicate",
    "unverified",
    "malformed",
];
const ARRIVALS: &[&str] = &["backfill", "poll", "push"];
/// Provider replies are counted by their HTTP status, an open set; these are the ones
/// the poller gives a meaning of its own (a page, a refresh, a pause) and a reply that
/// never came.
const PROVIDER_STATUSES: &[&str] = &["200", "401", "429", "transport_error"];

pub struct Metrics {
    registry: Registry,
    /// Provider ids, for the per-provider series.
    providers: Vec<String>,
    /// Deliveries that reached a state: `succeeded`, `retrying`, `exhausted`.
    pub deliveries: Family<OutcomeLabels, Counter>,
    /// Attempts by outcome: `success`, `failure`, `gone` (410).
    pub attempts: Family<OutcomeLabels, Counter>,
    pub attempt_seconds: Histogram,
    pub deliveries_in_flight: Gauge<i64, AtomicI64>,
    deliveries_due: Gauge<i64, AtomicI64>,
    jobs_due: Family<ProviderLabels, Gauge<i64, AtomicI64>>,
    pub provider_requests: Family<ProviderStatusLabels, Counter>,
    pub rate_limit_waits: Family<ProviderReasonLabels, Counter>,
    pub token_refreshes: Family<ProviderOutcomeLabels, Counter>,
    pub jobs_failed: Family<ProviderReasonLabels, Counter>,
    pub notifications: Family<ProviderOutcomeLabels, Counter>,
    pub records: Family<ProviderArrivalLabels, Counter>,
}

impl Metrics {
    /// The gateway's metrics; `providers` are the ids whose series exist from the first
    /// scrape (the caller names them: metrics, reached from delivery, knows no providers).
    pub fn new(providers: &[&str]) -> Metrics {
        let mut registry = Registry::with_prefix("wearbridge");
        let m = Metrics {
            providers: providers.iter().map(|p| p.to_string()).collect(),
            deliveries: Family::default(),
            attempts: Family::default(),
            // 5 ms … ~20 s: a loopback receiver answers in a few ms, the timeout is 15 s.
            attempt_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            deliveries_in_flight: Gauge::default(),
            deliveries_due: Gauge::default(),
            jobs_due: Family::default(),
            provider_requests: Family::default(),
            rate_limit_waits: Family::default(),
            token_refreshes: Family::default(),
            jobs_failed: Family::default(),
            notifications: Family::default(),
            records: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "deliveries",
            "Deliveries that reached a state, by outcome",
            m.deliveries.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Delivery attempts, by outcome",
            m.attempts.clone(),
        );
        registry.register(
            "delivery_attempt_duration_seconds",
            "Time from sending a webhook to its response",
            m.attempt_seconds.clone(),
        );
        registry.register(
            "deliveries_in_flight",
            "Deliveries this process is sending now",
            m.deliveries_in_flight.clone(),
        );
        registry.register(
            "deliveries_due",
            "Open deliveries whose next attempt is due (all processes)",
            m.deliveries_due.clone(),
        );
        registry.register(
            "jobs_due",
            "Provider poll and backfill jobs due to run, by provider (all processes)",
            m.jobs_due.clone(),
        );
        registry.register(
            "provider_requests",
            "Requests to provider APIs, by provider and HTTP status",
            m.provider_requests.clone(),
        );
        registry.register(
            "provider_rate_limit_waits",
            "Provider requests held back by a rate limit, by provider and reason",
            m.rate_limit_waits.clone(),
        );
        registry.register(
            "token_refreshes",
            "Provider token refreshes, by provider and outcome",
            m.token_refreshes.clone(),
        );
        registry.register(
            "jobs_failed",
            "Polling jobs stopped with an error, by provider and reason",
            m.jobs_failed.clone(),
        );
        registry.register(
            "provider_notifications",
            "Provider notifications received, by provider and what each caused (or why it was refused)",
            m.notifications.clone(),
        );
        registry.register(
            "records_stored",
            "Provider records stored new or changed, by provider and how they arrived",
            m.records.clone(),
        );
        for outcome in DELIVERY_OUTCOMES {
            m.deliveries.get_or_create_owned(&OutcomeLabels {
                outcome: outcome.as_str().into(),
            });
        }
        for outcome in ATTEMPT_OUTCOMES {
            m.attempts.get_or_create_owned(&OutcomeLabels {
                outcome: (*outcome).into(),
            });
        }
        for p in &m.providers {
            let provider = || p.clone();
            m.jobs_due.get_or_create_owned(&ProviderLabels {
                provider: provider(),
            });
            for status in PROVIDER_STATUSES {
                m.provider_requests
                    .get_or_create_owned(&ProviderStatusLabels {
                        provider: provider(),
                        status: (*status).into(),
                    });
            }
            for reason in RATE_LIMIT_REASONS {
                m.rate_limit_waits
                    .get_or_create_owned(&ProviderReasonLabels {
                        provider: provider(),
                        reason: (*reason).into(),
                    });
            }
            for reason in JOB_FAILURES {
                m.jobs_failed.get_or_create_owned(&ProviderReasonLabels {
                    provider: provider(),
                    reason: (*reason).into(),
                });
            }
            for outcome in NOTIFICATION_OUTCOMES {
                m.notifications.get_or_create_owned(&ProviderOutcomeLabels {
                    provider: provider(),
                    outcome: (*outcome).into(),
                });
            }
            for arrival in ARRIVALS {
                m.records.get_or_create_owned(&ProviderArrivalLabels {
                    provider: provider(),
                    arrival: (*arrival).into(),
                });
            }
            for outcome in TOKEN_REFRESH_OUTCOMES {
                m.token_refreshes
                    .get_or_create_owned(&ProviderOutcomeLabels {
                        provider: provider(),
                        outcome: (*outcome).into(),
                    });
            }
        }
        Metrics { registry, ..m }
    }

    pub fn delivery(&self, status: DeliveryStatus) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: status.as_str().into(),
            })
            .inc();
    }

    pub fn attempt(&self, outcome: &str, seconds: f64) {
        self.attempts
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
        self.attempt_seconds.observe(seconds);
    }

    pub fn provider_request(&self, provider: &str, status: &str) {
        self.provider_requests
            .get_or_create(&ProviderStatusLabels {
                provider: provider.into(),
                status: status.into(),
            })
            .inc();
    }

    pub fn rate_limit_wait(&self, provider: &str, reason: &str) {
        self.rate_limit_waits
            .get_or_create(&ProviderReasonLabels {
                provider: provider.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn job_failed(&self, provider: &str, reason: &str) {
        self.jobs_failed
            .get_or_create(&ProviderReasonLabels {
                provider: provider.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn notification(&self, provider: &str, outcome: &str) {
        self.notifications
            .get_or_create(&ProviderOutcomeLabels {
                provider: provider.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn records_stored(&self, provider: &str, arrival: &str, n: u64) {
        self.records
            .get_or_create(&ProviderArrivalLabels {
                provider: provider.into(),
                arrival: arrival.into(),
            })
            .inc_by(n);
    }

    pub fn token_refresh(&self, provider: &str, outcome: &str) {
        self.token_refreshes
            .get_or_create(&ProviderOutcomeLabels {
                provider: provider.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// The exposition text, with the backlog gauges read from the database now.
    pub async fn render(&self, store: &Store) -> anyhow::Result<String> {
        let now = crate::now_ms();
        self.deliveries_due.set(store.deliveries_due(now).await?);
        let due = store.jobs_due_by_provider(now).await?;
        self.jobs_due.clear();
        for p in &self.providers {
            let n = due
                .iter()
                .find(|(id, _)| id == p)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            self.jobs_due
                .get_or_create(&ProviderLabels {
                    provider: p.clone(),
                })
                .set(n);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVIDERS: &[&str] = &["oura", "strava"];

    #[test]
    fn known_label_values_start_at_zero() {
        let m = Metrics::new(PROVIDERS);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        for outcome in DELIVERY_OUTCOMES {
            let series = format!("wearbridge_deliveries_total{{outcome=\"{outcome}\"}} 0");
            assert!(out.contains(&series), "{series}:\n{out}");
        }
        for outcome in ATTEMPT_OUTCOMES {
            let series = format!("wearbridge_delivery_attempts_total{{outcome=\"{outcome}\"}} 0");
            assert!(out.contains(&series), "{series}:\n{out}");
        }
        for id in PROVIDERS {
            for (family, label, values) in [
                ("provider_requests_total", "status", PROVIDER_STATUSES),
                (
                    "provider_rate_limit_waits_total",
                    "reason",
                    RATE_LIMIT_REASONS,
                ),
                ("token_refreshes_total", "outcome", TOKEN_REFRESH_OUTCOMES),
                ("jobs_failed_total", "reason", JOB_FAILURES),
            ] {
                for v in values {
                    let series =
                        format!("wearbridge_{family}{{provider=\"{id}\",{label}=\"{v}\"}} 0");
                    assert!(out.contains(&series), "{series}:\n{out}");
                }
            }
        }
    }

    #[test]
    fn counters_render_with_their_labels() {
        let m = Metrics::new(PROVIDERS);
        m.delivery(DeliveryStatus::Succeeded);
        m.attempt("success", 0.004);
        m.attempt("failure", 0.3);
        m.provider_request("oura", "200");
        m.token_refresh("strava", "refused");
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &m.registry).unwrap();
        assert!(
            out.contains("wearbridge_deliveries_total{outcome=\"succeeded\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("wearbridge_delivery_attempts_total{outcome=\"failure\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("wearbridge_delivery_attempt_duration_seconds_count 2"),
            "{out}"
        );
        assert!(
            out.contains("wearbridge_delivery_attempt_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("wearbridge_provider_requests_total{provider=\"oura\",status=\"200\"} 1"),
            "{out}"
        );
        assert!(
            out.contains(
                "wearbridge_token_refreshes_total{provider=\"strava\",outcome=\"refused\"} 1"
            ),
            "{out}"
        );
    }
}
