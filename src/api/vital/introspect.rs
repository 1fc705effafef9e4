//! `/v2/introspect/resources` and `/v2/introspect/historical_pull`: per user, provider
//! and resource, what is stored and how the backfill went, read from the real jobs and
//! records (Junction's `UserResourcesResponse` and `UserHistoricalPullsResponse`,
//! https://docs.junction.com/api-reference/data/introspection/historical-pulls).
//!
//! Users come a page at a time, oldest first: `user_limit` of them (default 50), from
//! the offset `next_cursor` (or `cursor`) carries. As Junction warns, a page may hold
//! fewer users than asked: users without a live connection are left out.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::super::{Auth, Query};
use super::{field_provider, junction_slug};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::format_ms;
use crate::providers;
use crate::states::ConnectionStatus;
use crate::store::{BackfillState, Connection, Team};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IntrospectParams {
    /// Only this user.
    #[serde(default)]
    user_id: Option<Uuid>,
    /// Only this provider (Junction's slug, or ours); empty for any.
    #[serde(default)]
    #[param(schema_with = super::provider_param_schema)]
    provider: Option<String>,
    /// Users per page (1–1000, default 50).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    user_limit: Option<i64>,
    /// The offset of the page: what `next_cursor` said (a cursor this API gave is
    /// digits; empty is the first page).
    #[serde(default)]
    #[param(pattern = "^[0-9]{0,18}$")]
    cursor: Option<String>,
    /// The same, under Junction's newer name.
    #[serde(default)]
    #[param(pattern = "^[0-9]{0,18}$")]
    next_cursor: Option<String>,
}

/// The users of one page with their live connections (of one provider when asked),
/// and the cursor of the next page.
async fn page(
    s: &AppState,
    team: &Team,
    q: &IntrospectParams,
) -> ApiResult<(Vec<(Uuid, Vec<Connection>)>, Option<String>)> {
    let limit = q.user_limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation(
            "`user_limit` must be between 1 and 1000",
        ));
    }
    let offset =
        // An empty cursor is the first page, as no cursor is.
        match q
            .next_cursor
            .as_deref()
            .or(q.cursor.as_deref())
            .filter(|c| !c.is_empty())
        {
            Some(c) => c.parse::<i64>().ok().filter(|o| *o >= 0).ok_or_else(|| {
                ApiError::validation("`next_cursor` is not a cursor this API gave")
            })?,
            None => 0,
        };
    let provider = q
        .provider
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| field_provider(p, "provider").map(|p| p.id()))
        .transpose()?;
    let (users, next) = match q.user_id {
        Some(u) => (
            s.store
                .get_user(team.id, u)
                .await?
                .map(|u| u.user_id)
                .into_iter()
                .collect(),
            None,
        ),
        None => {
            let (users, total) = s.store.list_users(team.id, offset, limit).await?;
            let next = (offset + limit < total).then(|| (offset + limit).to_string());
            (
                users.into_iter().map(|u| u.user_id).collect::<Vec<_>>(),
                next,
            )
        }
    };
    let mut out = Vec::new();
    for user in users {
        let connections: Vec<Connection> = s
            .store
            .user_connections(team.id, user)
            .await?
            .into_iter()
            .filter(|c| c.status != ConnectionStatus::Deregistered)
            .filter(|c| provider.is_none_or(|p| c.provider == p))
            .collect();
        if !connections.is_empty() {
            out.push((user, connections));
        }
    }
    Ok((out, next))
}

/// Junction's `LastAttempt`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LastAttempt {
    #[schema(format = DateTime)]
    timestamp: String,
    /// `success`, or `failure` while a job of the resource holds an error.
    status: String,
}

/// Junction's `SingleResourceStatistics`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SingleResourceStatistics {
    last_attempt: Option<LastAttempt>,
    /// When the oldest and newest stored records happened.
    #[schema(format = DateTime)]
    oldest_data: Option<String>,
    #[schema(format = DateTime)]
    newest_data: Option<String>,
    /// Records stored (each was, or will be, sent as an event).
    sent_count: Option<i64>,
}

/// Junction's `SingleUserResourceResponse`: per provider slug, per resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct SingleUserResourceResponse {
    user_id: Uuid,
    provider: BTreeMap<String, BTreeMap<String, SingleResourceStatistics>>,
}

/// Junction's `UserResourcesResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResourcesResponse {
    data: Vec<SingleUserResourceResponse>,
    /// Always `null`: the next page is asked for with `next_cursor`.
    next: Option<String>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/introspect/resources", tag = "junction", operation_id = "v2_introspect_resources", params(IntrospectParams),
    responses((status = 200, description = "per user, provider and resource: what is stored and the last run", body = UserResourcesResponse)))]
pub async fn resources(
    State(s): State<AppState>,
    Auth(team): Auth,
    Query(q): Query<IntrospectParams>,
) -> ApiResult<Json<UserResourcesResponse>> {
    let (users, next_cursor) = page(&s, &team, &q).await?;
    let mut data = Vec::new();
    for (user, connections) in users {
        let mut by_provider = BTreeMap::new();
        for c in connections {
            let states = s
                .store
                .resource_states(team.id, user, &c.provider, c.id)
                .await?;
            let resources = states
                .into_iter()
                .map(|r| {
                    let stats = SingleResourceStatistics {
                        last_attempt: r.last_run_at.map(|t| LastAttempt {
                            timestamp: format_ms(t),
                            status: if r.last_run_failed {
                                "failure"
                            } else {
                                "success"
                            }
                            .to_string(),
                        }),
                        oldest_data: r.oldest.map(format_ms),
                        newest_data: r.newest.map(format_ms),
                        sent_count: Some(r.records),
                    };
                    (r.resource, stats)
                })
                .collect();
            by_provider.insert(junction_slug(&c.provider).to_string(), resources);
        }
        data.push(SingleUserResourceResponse {
            user_id: user,
            provider: by_provider,
        });
    }
    Ok(Json(UserResourcesResponse {
        data,
        next: None,
        next_cursor,
    }))
}

/// Junction's `HistoricalPullTimeline`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoricalPullTimeline {
    /// When the backfill was planned (the connection was made).
    #[schema(format = DateTime)]
    scheduled_at: String,
    /// When its first window finished (jobs keep no start time of their own).
    #[schema(format = DateTime)]
    started_at: Option<String>,
    /// When its last window finished, once all have.
    #[schema(format = DateTime)]
    ended_at: Option<String>,
}

/// Junction's `SingleHistoricalPullStatistics`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SingleHistoricalPullStatistics {
    /// `success` (every window stored), `failure` (a window gave up), `retrying` (a
    /// window failed and waits for its retry), `in_progress` or `scheduled`.
    status: String,
    /// The range the backfill covers.
    #[schema(format = DateTime)]
    range_start: Option<String>,
    #[schema(format = DateTime)]
    range_end: Option<String>,
    timeline: HistoricalPullTimeline,
    #[schema(value_type = Option<i64>)]
    days_with_data: Option<()>,
    /// The gateway's version.
    release: String,
    #[schema(value_type = Option<String>)]
    trace_id: Option<()>,
    /// `non_retriable_error` when the status is `failure`, else `null`.
    error_details: Option<String>,
}

/// Junction's `SingleProviderHistoricalPullResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SingleProviderHistoricalPullResponse {
    pulled: BTreeMap<String, SingleHistoricalPullStatistics>,
    /// Resources the provider shares that have no backfill.
    not_pulled: Vec<String>,
}

/// Junction's `SingleUserHistoricalPullResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SingleUserHistoricalPullResponse {
    user_id: Uuid,
    provider: BTreeMap<String, SingleProviderHistoricalPullResponse>,
}

/// Junction's `UserHistoricalPullsResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserHistoricalPullsResponse {
    data: Vec<SingleUserHistoricalPullResponse>,
    /// Always `null`: the next page is asked for with `next_cursor`.
    next: Option<String>,
    next_cursor: Option<String>,
}

/// A backfill's state in Junction's words.
fn pull_status(b: &BackfillState) -> &'static str {
    if b.windows_failed > 0 {
        "failure"
    } else if b.windows_done == b.windows_total {
        "success"
    } else if b.windows_retrying > 0 {
        "retrying"
    } else if b.windows_done > 0 {
        "in_progress"
    } else {
        "scheduled"
    }
}

fn pull_statistics(b: &BackfillState) -> SingleHistoricalPullStatistics {
    let status = pull_status(b);
    SingleHistoricalPullStatistics {
        status: status.to_string(),
        range_start: Some(format_ms(b.range_start)),
        range_end: Some(format_ms(b.range_end)),
        timeline: HistoricalPullTimeline {
            scheduled_at: format_ms(b.scheduled_at),
            started_at: b.first_finished_at.map(format_ms),
            ended_at: b.last_finished_at.map(format_ms),
        },
        days_with_data: None,
        release: format!("wearbridge {}", env!("CARGO_PKG_VERSION")),
        trace_id: None,
        error_details: (status == "failure").then(|| "non_retriable_error".to_string()),
    }
}

#[utoipa::path(get, path = "/introspect/historical_pull", tag = "junction", operation_id = "v2_introspect_historical_pull", params(IntrospectParams),
    responses((status = 200, description = "per user, provider and resource: the backfill's status, range and timeline", body = UserHistoricalPullsResponse)))]
pub async fn historical_pull(
    State(s): State<AppState>,
    Auth(team): Auth,
    Query(q): Query<IntrospectParams>,
) -> ApiResult<Json<UserHistoricalPullsResponse>> {
    let (users, next_cursor) = page(&s, &team, &q).await?;
    let mut data = Vec::new();
    for (user, connections) in users {
        let mut by_provider = BTreeMap::new();
        for c in connections {
            let states = s.store.backfill_states(c.id).await?;
            let not_pulled = providers::find(&c.provider)
                .map(|p| {
                    p.manifest
                        .resources
                        .iter()
                        .map(|r| r.name.to_string())
                        .filter(|r| !states.iter().any(|b| &b.resource == r))
                        .collect()
                })
                .unwrap_or_default();
            let pulled = states
                .iter()
                .map(|b| (b.resource.clone(), pull_statistics(b)))
                .collect();
            by_provider.insert(
                junction_slug(&c.provider).to_string(),
                SingleProviderHistoricalPullResponse { pulled, not_pulled },
            );
        }
        data.push(SingleUserHistoricalPullResponse {
            user_id: user,
            provider: by_provider,
        });
    }
    Ok(Json(UserHistoricalPullsResponse {
        data,
        next: None,
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_is_described_in_junctions_words() {
        let b = |done, failed, retrying| BackfillState {
            windows_total: 13,
            windows_done: done,
            windows_failed: failed,
            windows_retrying: retrying,
            ..Default::default()
        };
        assert_eq!(pull_status(&b(0, 0, 0)), "scheduled");
        assert_eq!(pull_status(&b(4, 0, 0)), "in_progress");
        assert_eq!(pull_status(&b(4, 0, 1)), "retrying");
        assert_eq!(pull_status(&b(12, 1, 0)), "failure");
        assert_eq!(pull_status(&b(13, 0, 0)), "success");
        let stats = pull_statistics(&b(12, 1, 0));
        assert_eq!(stats.error_details.as_deref(), Some("non_retriable_error"));
    }
}
