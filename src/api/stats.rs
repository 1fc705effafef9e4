//! Delivery statistics: a team's attempts per hour by outcome, with latency percentiles
//! (the portal's activity charts; also for dashboards of your own).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{parse_id, Auth, Query};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::format_ms;

const HOUR_MS: i64 = 3_600_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// How many hours back, the current one included (1–168, default 24).
    #[param(minimum = 1, maximum = 168)]
    hours: Option<i64>,
    /// Only this endpoint's attempts.
    endpoint_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Latency {
    p50: Option<i64>,
    p95: Option<i64>,
    max: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Bucket {
    start: String,
    succeeded: i64,
    failed: i64,
    latency_ms: Latency,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    bucket_secs: i64,
    buckets: Vec<Bucket>,
}

/// `GET /v1/webhooks/stats?hours=24&endpoint_id=`: one bucket per hour, oldest first,
/// the last being the current hour. Counts are attempts (a 2xx succeeded); latency
/// percentiles are the upper bound of the histogram bucket they fall in.
#[utoipa::path(get, path = "/webhooks/stats", tag = "webhooks", params(StatsQuery),
    responses((status = 200, description = "attempts per hour by outcome, with latency percentiles", body = Stats)))]
pub async fn stats(
    State(s): State<AppState>,
    Auth(team): Auth,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<Stats>> {
    let hours = q.hours.unwrap_or(24);
    if !(1..=168).contains(&hours) {
        return Err(ApiError::validation("hours: must be between 1 and 168"));
    }
    let endpoint = match q.endpoint_id.as_deref() {
        Some(raw) => {
            let id = parse_id(raw, "endpoint")?;
            s.store
                .get_endpoint(team.id, id)
                .await?
                .ok_or_else(|| ApiError::not_found("endpoint"))?;
            Some(id)
        }
        None => None,
    };
    let from = crate::now_ms() / HOUR_MS * HOUR_MS - (hours - 1) * HOUR_MS;
    let buckets = s
        .store
        .delivery_stats(team.id, endpoint, from, HOUR_MS, hours as usize)
        .await?;
    Ok(Json(Stats {
        bucket_secs: HOUR_MS / 1000,
        buckets: buckets
            .into_iter()
            .map(|b| Bucket {
                start: format_ms(b.start),
                succeeded: b.succeeded,
                failed: b.failed,
                latency_ms: Latency {
                    p50: b.p50_ms,
                    p95: b.p95_ms,
                    max: b.max_ms,
                },
            })
            .collect(),
    }))
}
