//! Events and the delivery log: the event-type catalogue, example (test) events, the
//! last deliveries per endpoint, one event with every attempt, resend and recover.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{parse_id, parse_instant, Auth, Body, Query};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::{example_data, format_ms, Envelope, EventType};
use crate::store::{Attempt, Target};

pub async fn event_types(Auth(_): Auth) -> Json<Value> {
    let example_user = Uuid::from_u128(0x4eca_10f9_7c2b_4a11_9d7e_3f0a_b1c2_d3e4);
    let types: Vec<Value> = EventType::all()
        .into_iter()
        .map(|t| {
            json!({
                "name": t.name(),
                "description": t.description(),
                "example": example_data(t, example_user),
            })
        })
        .collect();
    Json(json!({"data": types}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExampleRequest {
    event_type: String,
    #[serde(default)]
    user_id: Option<Uuid>,
}

/// Publishes a type's example payload to the team's subscribed endpoints.
pub async fn publish_example(State(s): State<AppState>, Auth(team): Auth, Body(req): Body<ExampleRequest>) -> ApiResult<(StatusCode, Json<Value>)> {
    let t: EventType = req.event_type.parse().map_err(|e: String| ApiError::validation(format!("event_type: {e}")))?;
    let user = match req.user_id {
        Some(id) => Some(s.store.get_user(team.id, id).await?.ok_or_else(|| ApiError::not_found("user"))?),
        None => None,
    };
    let data_user = user.as_ref().map(|u| u.user_id).unwrap_or_else(Uuid::new_v4);
    let env = Envelope::new(
        Uuid::new_v4(),
        t,
        team.id,
        user.map(|u| (u.user_id, u.client_user_id)),
        example_data(t, data_user),
    );
    let published = s.store.publish(team.id, &[env.clone()], Target::Subscribers).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"event_id": env.id, "event_type": env.event_type, "deliveries": published.deliveries}))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    #[serde(default = "fifty")]
    limit: i64,
    #[serde(default)]
    status: Option<String>,
}

fn fifty() -> i64 {
    50
}

const STATUSES: [&str; 4] = ["pending", "retrying", "succeeded", "exhausted"];

async fn team_endpoint(s: &AppState, team: Uuid, raw: &str) -> ApiResult<crate::store::Endpoint> {
    let id = parse_id(raw, "endpoint")?;
    s.store.get_endpoint(team, id).await?.ok_or_else(|| ApiError::not_found("endpoint"))
}

/// The last deliveries to an endpoint, newest first.
pub async fn endpoint_events(State(s): State<AppState>, Auth(team): Auth, Path(id): Path<String>, Query(q): Query<LogQuery>) -> ApiResult<Json<Value>> {
    let ep = team_endpoint(&s, team.id, &id).await?;
    if !(1..=250).contains(&q.limit) {
        return Err(ApiError::validation("`limit` must be between 1 and 250"));
    }
    if let Some(st) = &q.status {
        if !STATUSES.contains(&st.as_str()) {
            return Err(ApiError::validation(format!("`status` must be one of {}", STATUSES.join(", "))));
        }
    }
    let rows = s.store.list_endpoint_deliveries(team.id, ep.id, q.limit, q.status.as_deref()).await?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|d| {
            json!({
                "event_id": d.event_id,
                "event_type": d.event_type,
                "created_at": format_ms(d.event_created_at),
                "status": d.status,
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "last_attempt_at": d.last_attempt_at.map(format_ms),
                "next_attempt_at": d.next_attempt_at.map(format_ms),
            })
        })
        .collect();
    Ok(Json(json!({"data": data})))
}

#[derive(Serialize)]
struct AttemptView<'a> {
    run_number: i64,
    trigger: &'a str,
    attempted_at: String,
    url: &'a str,
    request_headers: &'a std::collections::BTreeMap<String, String>,
    response_status: Option<i64>,
    response_body: Option<&'a str>,
    duration_ms: i64,
    error_kind: Option<&'a str>,
    error_message: Option<&'a str>,
    worker: &'a str,
}

fn attempt_view(a: &Attempt) -> Value {
    serde_json::to_value(AttemptView {
        run_number: a.run_number,
        trigger: &a.trigger,
        attempted_at: format_ms(a.attempted_at),
        url: &a.url,
        request_headers: &a.request_headers,
        response_status: a.response_status,
        response_body: a.response_body.as_deref(),
        duration_ms: a.duration_ms,
        error_kind: a.error_kind.as_deref(),
        error_message: a.error_message.as_deref(),
        worker: &a.worker,
    })
    .expect("views serialise")
}

/// One event: its payload and, per endpoint, every attempt.
pub async fn event_detail(State(s): State<AppState>, Auth(team): Auth, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "event")?;
    let ev = s.store.get_event(team.id, id).await?.ok_or_else(|| ApiError::not_found("event"))?;
    let deliveries = s.store.event_deliveries(team.id, id).await?;
    let payload: Value = serde_json::from_str(&ev.payload).map_err(ApiError::internal)?;
    let deliveries: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            json!({
                "endpoint_id": d.endpoint_id,
                "status": d.status,
                "attempts": d.attempts,
                "last_status_code": d.last_status_code,
                "next_attempt_at": d.next_attempt_at.map(format_ms),
                "attempt_log": d.attempt_log.iter().map(attempt_view).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": ev.id,
        "event_type": ev.event_type,
        "created_at": format_ms(ev.created_at),
        "payload": payload,
        "deliveries": deliveries,
    })))
}

/// A manual attempt of one event to one endpoint, now; answers with the attempt.
pub async fn resend(State(s): State<AppState>, Auth(team): Auth, Path((id, event_id)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let ep = team_endpoint(&s, team.id, &id).await?;
    let event_id = parse_id(&event_id, "event")?;
    let (delivery_id, attempts, status) =
        s.store.find_delivery(team.id, ep.id, event_id).await?.ok_or_else(|| ApiError::not_found("delivery"))?;
    let ev = s.store.get_event(team.id, event_id).await?.ok_or_else(|| ApiError::not_found("event"))?;
    let attempt = s.worker.resend(&ep, delivery_id, attempts, &status, event_id, &ev.payload).await?;
    Ok(Json(attempt_view(&attempt)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    since: String,
}

/// Re-queues every failed delivery to the endpoint since `since`.
pub async fn recover(State(s): State<AppState>, Auth(team): Auth, Path(id): Path<String>, Body(req): Body<RecoverRequest>) -> ApiResult<(StatusCode, Json<Value>)> {
    let ep = team_endpoint(&s, team.id, &id).await?;
    let since = parse_instant(&req.since, "since")?;
    let n = s.store.recover_deliveries(team.id, ep.id, since).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"recovered": n}))))
}
