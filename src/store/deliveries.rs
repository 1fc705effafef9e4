//! The delivery queue and its log. A delivery is (event × endpoint) with a
//! [`DeliveryStatus`]: pending, retrying, succeeded or exhausted.
//!
//! Claiming pushes `next_attempt_at` out by a lease and remembers that value; the
//! completion only lands if the lease is still the one it claimed, so a delivery whose
//! lease ran out and that another worker took over is not overwritten by a late finisher.
//!
//! Deliveries whose events share an ordering key (a connection's backfill chunks of one
//! resource) reach each endpoint strictly in publish order: claiming skips a delivery
//! while an earlier one of its key to the same endpoint is still open (see
//! [`Store::claim_deliveries`]).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use super::{get_opt_state, get_state, get_uuid, placeholders, Backend, Store};
use crate::now_ms;
use crate::states::{AttemptErrorKind, AttemptTrigger, DeliveryStatus};

/// What one batch of attempts does to an endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HealthChange {
    /// A success came in: the failure record restarts from what follows it.
    reset: bool,
    /// Failures since the last success in the batch (or since the batch began).
    failures: i64,
    /// When the earliest of those failures happened (`i64::MAX` when none).
    first_failure: i64,
    /// An attempt got 410 Gone: the endpoint is disabled.
    gone: bool,
}

impl Default for HealthChange {
    fn default() -> HealthChange {
        HealthChange {
            reset: false,
            failures: 0,
            first_failure: i64::MAX,
            gone: false,
        }
    }
}

impl HealthChange {
    /// Takes in the next finished attempt.
    fn record(&mut self, outcome: Outcome, attempted_at: i64) {
        match outcome {
            Outcome::Success => {
                *self = HealthChange {
                    reset: true,
                    gone: self.gone,
                    ..HealthChange::default()
                }
            }
            Outcome::Failure | Outcome::Gone => {
                self.failures += 1;
                self.first_failure = self.first_failure.min(attempted_at);
                self.gone |= outcome == Outcome::Gone;
            }
        }
    }
}

/// A delivery claimed by a worker, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub team_id: Uuid,
    pub event_id: Uuid,
    pub endpoint_id: Uuid,
    /// Attempts made before this one.
    pub attempts: i64,
    /// The `next_attempt_at` this claim wrote; the completion must match it.
    pub lease: i64,
    pub payload: String,
    /// The event's ordering key: deliveries sharing it (and an endpoint) are claimed one
    /// at a time, in publish order.
    pub ordering_key: Option<String>,
}

/// One HTTP try, as the log keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub run_number: i64,
    pub trigger: AttemptTrigger,
    pub attempted_at: i64,
    pub url: String,
    pub request_headers: BTreeMap<String, String>,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub duration_ms: i64,
    /// Why it got no answer that counts; null on a 2xx.
    pub error_kind: Option<AttemptErrorKind>,
    pub error_message: Option<String>,
    /// The process that made it (`host:pid`).
    pub worker: String,
}

/// How an attempt ended, for the endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// 410 Gone: the receiver asks us to stop; the endpoint is disabled.
    Gone,
}

/// What a worker writes back for one claimed delivery.
#[derive(Debug, Clone)]
pub struct Completion {
    pub delivery_id: i64,
    pub endpoint_id: Uuid,
    pub lease: i64,
    /// None when nothing was sent (rate-limited: only rescheduled; endpoint disabled).
    pub attempt: Option<(Attempt, Outcome)>,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// The delivery has an ordering key: once it closes, the next of its key may go.
    pub ordered: bool,
}

impl Completion {
    /// What a worker writes back for `claimed`: its new status and schedule, and the
    /// attempt it made, if any (an attempt counts towards the delivery's attempts).
    pub fn of(
        claimed: &Claimed,
        status: DeliveryStatus,
        next_attempt_at: i64,
        attempt: Option<(Attempt, Outcome)>,
    ) -> Completion {
        Completion {
            delivery_id: claimed.id,
            endpoint_id: claimed.endpoint_id,
            lease: claimed.lease,
            attempts: claimed.attempts + i64::from(attempt.is_some()),
            attempt,
            status,
            next_attempt_at,
            ordered: claimed.ordering_key.is_some(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliverySummary {
    pub event_id: Uuid,
    pub event_type: String,
    pub event_created_at: i64,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub next_attempt_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryDetail {
    pub endpoint_id: Uuid,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub last_status_code: Option<i64>,
    pub next_attempt_at: Option<i64>,
    pub attempt_log: Vec<Attempt>,
}

fn attempt_from(r: &AnyRow) -> Result<Attempt, sqlx::Error> {
    Ok(Attempt {
        run_number: r.try_get("run_number")?,
        trigger: get_state(r, "trigger")?,
        attempted_at: r.try_get("attempted_at")?,
        url: r.try_get("url")?,
        request_headers: super::get_json(r, "request_headers")?,
        response_status: r.try_get("response_status")?,
        response_body: r.try_get("response_body")?,
        duration_ms: r.try_get("duration_ms")?,
        error_kind: get_opt_state(r, "error_kind")?,
        error_message: r.try_get("error_message")?,
        worker: r.try_get("worker")?,
    })
}

const ATTEMPT_CHUNK: usize = super::rows_per_statement(7);

/// The open statuses as an SQL list, `('pending', 'retrying')`: literal, so that the
/// partial index `deliveries_due` (declared with the same list) serves the query.
const OPEN: OpenStatuses = OpenStatuses;
struct OpenStatuses;

impl std::fmt::Display for OpenStatuses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open: Vec<&str> = DeliveryStatus::ALL
            .iter()
            .filter(|s| s.is_open())
            .map(|s| s.sql())
            .collect();
        write!(f, "({})", open.join(", "))
    }
}

impl Store {
    /// Claims up to `limit` due deliveries, reserving each until `lease_until`.
    ///
    /// A delivery with an ordering key is only claimable while no earlier one (lower id,
    /// which is publish order) of the same key to the same endpoint is open, whether
    /// waiting for a retry or in flight under someone's lease. So each endpoint gets a
    /// key's deliveries strictly one after the other, across processes and crashes: a
    /// killed worker's claim blocks its successors until the lease lapses and the
    /// delivery is sent again. A delivery that keeps failing holds back its successors
    /// (head-of-line) until it succeeds or is exhausted; then the next goes. Manual
    /// resends and recovered deliveries are sent whenever asked, outside this order.
    /// Deliveries without a key skip the check and pay nothing for it.
    pub async fn claim_deliveries(
        &self,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        let now = self.clock.now_ms();
        // Any number of processes may claim at once: PostgreSQL skips rows another
        // transaction holds; SQLite runs one writer at a time, so the UPDATE is atomic.
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // Claiming never closes a delivery, so a claim cannot release a successor; only
        // a committed completion does (the deliveries_ordered index serves the check).
        let sql = format!(
            "UPDATE deliveries SET next_attempt_at = $1 WHERE id IN ( \
               SELECT d.id FROM deliveries d WHERE d.status IN {OPEN} AND d.next_attempt_at <= $2 \
               AND (d.ordering_key IS NULL OR NOT EXISTS ( \
                 SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id \
                 AND p.ordering_key = d.ordering_key AND p.status IN {OPEN} AND p.id < d.id)) \
               ORDER BY d.next_attempt_at LIMIT $3{lock}) \
             RETURNING id, team_id, event_id, endpoint_id, attempts, ordering_key"
        );
        let rows = sqlx::query(&sql)
            .bind(lease_until)
            .bind(now)
            .bind(limit as i64)
            .fetch_all(&self.writer)
            .await?;
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let mut claimed = Vec::with_capacity(rows.len());
        for r in &rows {
            claimed.push(Claimed {
                id: r.try_get("id")?,
                team_id: get_uuid(r, "team_id")?,
                event_id: get_uuid(r, "event_id")?,
                endpoint_id: get_uuid(r, "endpoint_id")?,
                attempts: r.try_get("attempts")?,
                lease: lease_until,
                payload: String::new(),
                ordering_key: r.try_get("ordering_key")?,
            });
        }
        let mut ids: Vec<String> = claimed.iter().map(|c| c.event_id.to_string()).collect();
        ids.sort();
        ids.dedup();
        let sql = format!(
            "SELECT id, payload FROM events WHERE id IN ({})",
            placeholders(1, ids.len())
        );
        let mut q = sqlx::query(&sql);
        for id in &ids {
            q = q.bind(id.as_str());
        }
        let payloads: HashMap<String, String> = q
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("payload")?)))
            .collect::<Result<_, sqlx::Error>>()?;
        for c in &mut claimed {
            if let Some(payload) = payloads.get(&c.event_id.to_string()) {
                c.payload = payload.clone();
            }
        }
        Ok(claimed)
    }

    /// Writes back a batch of finished deliveries in one transaction: the attempts, the
    /// deliveries' new state (only where the claim still holds) and the endpoints'
    /// health. Endpoints failing since before `disable_failing_since` are disabled.
    /// Returns the ids of endpoints disabled now.
    pub async fn complete_deliveries(
        &self,
        batch: &[Completion],
        disable_failing_since: i64,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        if batch.is_empty() {
            return Ok(vec![]);
        }
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        // Delivery state first (the first statement takes SQLite's write lock).
        for chunk in batch.chunks(ATTEMPT_CHUNK) {
            // VALUES columns are named column1… on both backends; the casts type the
            // parameters for PostgreSQL.
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p: Vec<usize> = (i * 7 + 2..i * 7 + 9).collect();
                    format!(
                        "(CAST(${} AS BIGINT), CAST(${} AS TEXT), CAST(${} AS BIGINT), CAST(${} AS BIGINT), \
                         CAST(${} AS BIGINT), CAST(${} AS BIGINT), CAST(${} AS BIGINT))",
                        p[0], p[1], p[2], p[3], p[4], p[5], p[6]
                    )
                })
                .collect();
            let sql = format!(
                "UPDATE deliveries SET status = v.column2, attempts = v.column3, next_attempt_at = v.column4, \
                 last_status_code = COALESCE(v.column5, deliveries.last_status_code), \
                 last_attempt_at = COALESCE(v.column6, deliveries.last_attempt_at), updated_at = $1 \
                 FROM (VALUES {}) AS v WHERE deliveries.id = v.column1 AND deliveries.next_attempt_at = v.column7",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(now);
            for c in chunk {
                let (code, at) = match &c.attempt {
                    Some((a, _)) => (a.response_status, Some(a.attempted_at)),
                    None => (None, None),
                };
                q = q
                    .bind(c.delivery_id)
                    .bind(c.status.as_str())
                    .bind(c.attempts)
                    .bind(c.next_attempt_at)
                    .bind(code)
                    .bind(at)
                    .bind(c.lease);
            }
            q.execute(&mut *tx).await?;
        }
        let attempts: Vec<(i64, &Attempt)> = batch
            .iter()
            .filter_map(|c| c.attempt.as_ref().map(|(a, _)| (c.delivery_id, a)))
            .collect();
        insert_attempts(&mut tx, &attempts).await?;

        // Endpoint health, in the order the attempts finished.
        let mut health: HashMap<Uuid, HealthChange> = HashMap::new();
        for c in batch {
            if let Some((a, outcome)) = &c.attempt {
                health
                    .entry(c.endpoint_id)
                    .or_default()
                    .record(*outcome, a.attempted_at);
            }
        }
        let mut disabled = Vec::new();
        for (ep, change) in health {
            let HealthChange {
                reset,
                failures,
                first_failure: first,
                gone,
            } = change;
            let ep_s = ep.to_string();
            if reset {
                sqlx::query("UPDATE endpoints SET consecutive_failures = $2, first_failure_at = $3, last_success_at = $4 WHERE id = $1")
                    .bind(&ep_s)
                    .bind(failures)
                    .bind(if failures > 0 { Some(first) } else { None })
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            } else if failures > 0 {
                sqlx::query(
                    "UPDATE endpoints SET consecutive_failures = consecutive_failures + $2, \
                     first_failure_at = COALESCE(first_failure_at, $3) WHERE id = $1",
                )
                .bind(&ep_s)
                .bind(failures)
                .bind(first)
                .execute(&mut *tx)
                .await?;
            }
            // Disabled by a 410, or by failing since before the cutoff (never right after
            // a success: that leaves no failure to count from).
            let reason = if gone {
                Some("the endpoint answered 410 Gone".to_string())
            } else if failures == 0 {
                None
            } else {
                let failing_since: Option<i64> = sqlx::query_scalar(
                    "SELECT first_failure_at FROM endpoints \
                     WHERE id = $1 AND enabled = TRUE AND first_failure_at IS NOT NULL AND first_failure_at <= $2",
                )
                .bind(&ep_s)
                .bind(disable_failing_since)
                .fetch_optional(&mut *tx)
                .await?;
                failing_since.map(|since| {
                    format!(
                        "every delivery failed since {}",
                        crate::events::format_ms(since)
                    )
                })
            };
            let Some(reason) = reason else { continue };
            let res = sqlx::query("UPDATE endpoints SET enabled = FALSE, disabled_reason = $2, updated_at = $3 WHERE id = $1 AND enabled = TRUE")
                .bind(&ep_s)
                .bind(reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            if res.rows_affected() > 0 {
                disabled.push(ep);
            }
        }
        tx.commit().await?;
        // A closed ordered delivery releases the next of its key: claim it now rather
        // than at the next poll.
        if batch.iter().any(|c| c.ordered && !c.status.is_open()) {
            self.notify_work();
        }
        Ok(disabled)
    }

    /// Records a manual attempt (resend). A success marks the delivery `succeeded` and
    /// clears the endpoint's failure record (it has just answered); a failure leaves the
    /// delivery's status and scheduled retries as they were, and is not counted towards
    /// disabling the endpoint, which only its scheduled attempts decide.
    pub async fn record_manual_attempt(
        &self,
        delivery_id: i64,
        attempt: &Attempt,
        succeeded: bool,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(&format!(
            "UPDATE deliveries SET status = CASE WHEN $2 THEN {} ELSE status END, attempts = attempts + 1, \
             last_status_code = $3, last_attempt_at = $4, updated_at = $4 WHERE id = $1",
            DeliveryStatus::Succeeded.sql()
        ))
        .bind(delivery_id)
        .bind(succeeded)
        .bind(attempt.response_status)
        .bind(attempt.attempted_at)
        .execute(&mut *tx)
        .await?;
        insert_attempts(&mut tx, &[(delivery_id, attempt)]).await?;
        if succeeded {
            sqlx::query(
                "UPDATE endpoints SET consecutive_failures = 0, first_failure_at = NULL, last_success_at = $2 \
                 WHERE id = (SELECT endpoint_id FROM deliveries WHERE id = $1)",
            )
            .bind(delivery_id)
            .bind(attempt.attempted_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if succeeded {
            // It may have been holding back the next delivery of its ordering key.
            self.notify_work();
        }
        Ok(())
    }

    /// A team's delivery of one event to one endpoint: (delivery id, attempts).
    pub async fn find_delivery(
        &self,
        team: Uuid,
        endpoint: Uuid,
        event: Uuid,
    ) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let row = sqlx::query("SELECT id, attempts FROM deliveries WHERE team_id = $1 AND endpoint_id = $2 AND event_id = $3")
            .bind(team.to_string())
            .bind(endpoint.to_string())
            .bind(event.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("id")?, r.try_get("attempts")?)))
            .transpose()
    }

    /// The last `limit` deliveries to an endpoint, newest first.
    pub async fn list_endpoint_deliveries(
        &self,
        team: Uuid,
        endpoint: Uuid,
        limit: i64,
        status: Option<DeliveryStatus>,
    ) -> Result<Vec<DeliverySummary>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT d.event_id, e.event_type, e.created_at AS event_created_at, d.status, d.attempts, \
             d.last_status_code, d.last_attempt_at, d.next_attempt_at \
             FROM deliveries d JOIN events e ON e.id = d.event_id \
             WHERE d.team_id = $1 AND d.endpoint_id = $2 AND ($3 = '' OR d.status = $3) \
             ORDER BY d.id DESC LIMIT $4",
        )
        .bind(team.to_string())
        .bind(endpoint.to_string())
        .bind(status.map_or("", DeliveryStatus::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status: DeliveryStatus = get_state(r, "status")?;
                Ok(DeliverySummary {
                    event_id: get_uuid(r, "event_id")?,
                    event_type: r.try_get("event_type")?,
                    event_created_at: r.try_get("event_created_at")?,
                    next_attempt_at: if status.is_open() {
                        Some(r.try_get("next_attempt_at")?)
                    } else {
                        None
                    },
                    status,
                    attempts: r.try_get("attempts")?,
                    last_status_code: r.try_get("last_status_code")?,
                    last_attempt_at: r.try_get("last_attempt_at")?,
                })
            })
            .collect()
    }

    /// Every delivery of a team's event, each with its full attempt log.
    pub async fn event_deliveries(
        &self,
        team: Uuid,
        event: Uuid,
    ) -> Result<Vec<DeliveryDetail>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id, endpoint_id, status, attempts, last_status_code, next_attempt_at FROM deliveries \
             WHERE team_id = $1 AND event_id = $2 ORDER BY id",
        )
        .bind(team.to_string())
        .bind(event.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let log = sqlx::query(
                "SELECT run_number, trigger, attempted_at, url, request_headers, response_status, response_body, \
                 duration_ms, error_kind, error_message, worker FROM attempts WHERE delivery_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            let status: DeliveryStatus = get_state(&r, "status")?;
            out.push(DeliveryDetail {
                endpoint_id: get_uuid(&r, "endpoint_id")?,
                next_attempt_at: if status.is_open() {
                    Some(r.try_get("next_attempt_at")?)
                } else {
                    None
                },
                status,
                attempts: r.try_get("attempts")?,
                last_status_code: r.try_get("last_status_code")?,
                attempt_log: log.iter().map(attempt_from).collect::<Result<_, _>>()?,
            });
        }
        Ok(out)
    }

    /// Re-queues every delivery to `endpoint` created since `since` that failed
    /// (`retrying` or `exhausted`), due now. Each gets one more attempt.
    pub async fn recover_deliveries(
        &self,
        team: Uuid,
        endpoint: Uuid,
        since: i64,
    ) -> Result<u64, sqlx::Error> {
        let now = now_ms();
        let (retrying, exhausted) = (
            DeliveryStatus::Retrying.sql(),
            DeliveryStatus::Exhausted.sql(),
        );
        let res = sqlx::query(&format!(
            "UPDATE deliveries SET status = {retrying}, next_attempt_at = $4, updated_at = $4 \
             WHERE team_id = $1 AND endpoint_id = $2 AND created_at >= $3 \
             AND (status = {exhausted} OR (status = {retrying} AND attempts > 0))",
        ))
        .bind(team.to_string())
        .bind(endpoint.to_string())
        .bind(since)
        .bind(now)
        .execute(&self.writer)
        .await?;
        if res.rows_affected() > 0 {
            self.notify_work();
        }
        Ok(res.rows_affected())
    }

    /// Deliveries by status, over the whole database (metrics, tests, bench).
    pub async fn delivery_counts(&self) -> Result<BTreeMap<DeliveryStatus, i64>, sqlx::Error> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM deliveries GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((get_state(r, "status")?, r.try_get("n")?)))
            .collect()
    }

    /// Open deliveries whose next attempt is due at `now` (claimed ones are leased into
    /// the future, so this is the backlog no worker has picked up).
    pub async fn deliveries_due(&self, now: i64) -> Result<i64, sqlx::Error> {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM deliveries WHERE status IN {OPEN} AND next_attempt_at <= $1"
        );
        sqlx::query(&sql)
            .bind(now)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")
    }

    /// Attempts per worker process (operations: who did the work).
    pub async fn attempts_by_worker(&self) -> Result<BTreeMap<String, i64>, sqlx::Error> {
        let rows = sqlx::query("SELECT worker, COUNT(*) AS n FROM attempts GROUP BY worker")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("worker")?, r.try_get("n")?)))
            .collect()
    }

    /// When the next open delivery falls due, if any (lets an idle worker sleep exactly).
    pub async fn next_due_at(&self) -> Result<Option<i64>, sqlx::Error> {
        let sql =
            format!("SELECT MIN(next_attempt_at) AS t FROM deliveries WHERE status IN {OPEN}");
        let row = sqlx::query(&sql).fetch_one(&self.pool).await?;
        row.try_get("t")
    }
}

/// Upper bounds (ms) of the latency histogram the delivery statistics are read from;
/// a last, open bucket holds anything slower. Percentiles are reported as the bound of
/// the bucket they fall in (capped by the exact maximum), which keeps the query one
/// `GROUP BY` on both backends however many attempts an hour holds.
pub const LATENCY_BOUNDS_MS: &[i64] = &[
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000,
    5000, 7500, 10000, 15000,
];

/// One time bucket of a team's delivery attempts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatsBucket {
    /// Start of the bucket, Unix ms.
    pub start: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub max_ms: Option<i64>,
}

/// The `q` quantile (0..1) of a latency histogram laid out on [`LATENCY_BOUNDS_MS`].
pub fn histogram_quantile(counts: &[i64], q: f64, max_ms: i64) -> Option<i64> {
    let total: i64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    for (i, n) in counts.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(
                LATENCY_BOUNDS_MS
                    .get(i)
                    .copied()
                    .unwrap_or(max_ms)
                    .min(max_ms),
            );
        }
    }
    Some(max_ms)
}

impl Store {
    /// Attempts per bucket of `bucket_ms` from `from` (inclusive) for `buckets` buckets,
    /// by outcome (a 2xx is success), with latency percentiles; optionally one endpoint.
    /// Every bucket is returned, empty ones too, oldest first.
    pub async fn delivery_stats(
        &self,
        team: Uuid,
        endpoint: Option<Uuid>,
        from: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> Result<Vec<StatsBucket>, sqlx::Error> {
        let ladder: String = LATENCY_BOUNDS_MS
            .iter()
            .enumerate()
            .map(|(i, b)| format!("WHEN a.duration_ms <= {b} THEN {i} "))
            .collect();
        let sql = format!(
            "SELECT (a.attempted_at - $2) / $3 AS bucket, \
             CASE WHEN a.response_status >= 200 AND a.response_status < 300 THEN 1 ELSE 0 END AS ok, \
             CASE {ladder}ELSE {open} END AS lb, COUNT(*) AS n, MAX(a.duration_ms) AS max_ms \
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id \
             WHERE a.attempted_at >= $2 AND a.attempted_at < $4 AND d.team_id = $1 AND ($5 = '' OR d.endpoint_id = $5) \
             GROUP BY 1, 2, 3",
            open = LATENCY_BOUNDS_MS.len()
        );
        let rows = sqlx::query(&sql)
            .bind(team.to_string())
            .bind(from)
            .bind(bucket_ms)
            .bind(from + bucket_ms * buckets as i64)
            .bind(endpoint.map(|e| e.to_string()).unwrap_or_default())
            .fetch_all(&self.pool)
            .await?;
        let mut hist = vec![vec![0i64; LATENCY_BOUNDS_MS.len() + 1]; buckets];
        let mut out: Vec<StatsBucket> = (0..buckets)
            .map(|i| StatsBucket {
                start: from + bucket_ms * i as i64,
                ..Default::default()
            })
            .collect();
        for r in rows {
            let (bucket, ok, lb, n, max): (i64, i64, i64, i64, i64) = (
                r.try_get("bucket")?,
                r.try_get("ok")?,
                r.try_get("lb")?,
                r.try_get("n")?,
                r.try_get("max_ms")?,
            );
            let (Some(b), Some(h)) = (out.get_mut(bucket as usize), hist.get_mut(bucket as usize))
            else {
                continue;
            };
            if ok == 1 {
                b.succeeded += n;
            } else {
                b.failed += n;
            }
            b.max_ms = Some(b.max_ms.unwrap_or(0).max(max));
            h[lb as usize] += n;
        }
        for (b, h) in out.iter_mut().zip(&hist) {
            if let Some(max) = b.max_ms {
                b.p50_ms = histogram_quantile(h, 0.5, max);
                b.p95_ms = histogram_quantile(h, 0.95, max);
            }
        }
        Ok(out)
    }
}

async fn insert_attempts(
    conn: &mut sqlx::AnyConnection,
    attempts: &[(i64, &Attempt)],
) -> Result<(), sqlx::Error> {
    for chunk in attempts.chunks(super::rows_per_statement(12)) {
        if chunk.is_empty() {
            continue;
        }
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(i * 12 + 1, 12)))
            .collect();
        let sql = format!(
            "INSERT INTO attempts (delivery_id, run_number, trigger, attempted_at, url, request_headers, \
             response_status, response_body, duration_ms, error_kind, error_message, worker) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (delivery_id, a) in chunk {
            q = q
                .bind(*delivery_id)
                .bind(a.run_number)
                .bind(a.trigger.as_str())
                .bind(a.attempted_at)
                .bind(a.url.clone())
                .bind(serde_json::to_string(&a.request_headers).expect("strings serialise"))
                .bind(a.response_status)
                .bind(a.response_body.clone())
                .bind(a.duration_ms)
                .bind(a.error_kind.map(|k| k.as_str()))
                .bind(a.error_message.clone())
                .bind(a.worker.clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_restarts_the_failure_record_and_a_410_is_remembered() {
        let mut h = HealthChange::default();
        h.record(Outcome::Failure, 10);
        h.record(Outcome::Gone, 20);
        assert_eq!(
            (h.reset, h.failures, h.first_failure, h.gone),
            (false, 2, 10, true)
        );
        h.record(Outcome::Success, 30);
        h.record(Outcome::Failure, 40);
        assert_eq!(
            (h.reset, h.failures, h.first_failure, h.gone),
            (true, 1, 40, true)
        );
    }

    #[test]
    fn open_statuses_are_the_literal_list_the_due_index_is_declared_with() {
        let predicate = format!("WHERE status IN {OPEN};");
        assert_eq!(predicate, "WHERE status IN ('pending', 'retrying');");
        for migration in [
            include_str!("../../migrations/sqlite/0001_core.sql"),
            include_str!("../../migrations/postgres/0001_core.sql"),
        ] {
            assert!(
                migration.contains(&predicate),
                "deliveries_due: {predicate}"
            );
        }
    }

    fn hist(samples: &[i64]) -> Vec<i64> {
        let mut h = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        for &ms in samples {
            h[LATENCY_BOUNDS_MS
                .iter()
                .position(|&b| ms <= b)
                .unwrap_or(LATENCY_BOUNDS_MS.len())] += 1;
        }
        h
    }

    #[test]
    fn quantiles_are_the_bound_of_the_bucket_they_fall_in() {
        // 90 fast attempts (4 ms → the ≤ 5 bucket) and 10 slow ones (400 ms → ≤ 500).
        let samples: Vec<i64> = std::iter::repeat_n(4, 90)
            .chain(std::iter::repeat_n(400, 10))
            .collect();
        let h = hist(&samples);
        assert_eq!(histogram_quantile(&h, 0.5, 400), Some(5));
        assert_eq!(histogram_quantile(&h, 0.9, 400), Some(5));
        // The 95th falls among the slow ones; the bucket's bound (500) is capped by the max.
        assert_eq!(histogram_quantile(&h, 0.95, 400), Some(400));
        assert_eq!(histogram_quantile(&hist(&[]), 0.5, 0), None);
        // Slower than every bound: the exact maximum.
        assert_eq!(
            histogram_quantile(&hist(&[20_000]), 0.5, 20_000),
            Some(20_000)
        );
    }
}
