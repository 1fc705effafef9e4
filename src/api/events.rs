//! Events and the delivery log: the event-type catalogue, example (test) events, the
//! last deliveries per endpoint, one event with every attempt, resend and recover.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{parse_id, parse_instant, Auth, Body, Query};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::{example_data, format_ms, Envelope, EventType};
use crate::states::DeliveryStatus;
use crate::store::{Attempt, Target};

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeView {
    name: String,
    description: String,
    /// A realistic `data` of this type.
    example: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    data: Vec<EventTypeView>,
}

#[utoipa::path(get, path = "/event-types", tag = "events", responses((status = 200, description = "the event-type catalogue", body = EventTypeList)))]
pub async fn event_types(Auth(_): Auth) -> Json<EventTypeList> {
    let example_user = Uuid::from_u128(0x4eca_10f9_7c2b_4a11_9d7e_3f0a_b1c2_d3e4);
    let data = EventType::all()
        .into_iter()
        .map(|t| EventTypeView {
            name: t.name(),
            description: t.description(),
            example: example_data(t, example_user),
        })
        .collect();
    Json(EventTypeList { data })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExampleRequest {
    event_type: String,
    #[serde(default)]
    user_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExamplePublished {
    event_id: Uuid,
    event_type: String,
    /// Deliveries queued (one per subscribed endpoint).
    deliveries: u64,
}

/// Publishes a type's example payload to the team's subscribed endpoints.
#[utoipa::path(post, path = "/events/example", tag = "events", request_body = ExampleRequest,
    responses((status = 202, description = "published", body = ExamplePublished, links(
        ("event" = (operation_id = "event_detail", parameters(("event_id" = "$response.body#/event_id")))),
    ))))]
pub async fn publish_example(
    State(s): State<AppState>,
    Auth(team): Auth,
    Body(req): Body<ExampleRequest>,
) -> ApiResult<(StatusCode, Json<ExamplePublished>)> {
    let t: EventType = req
        .event_type
        .parse()
        .map_err(|e: String| ApiError::validation(format!("event_type: {e}")))?;
    let user = match req.user_id {
        Some(id) => Some(
            s.store
                .get_user(team.id, id)
                .await?
                .ok_or_else(|| ApiError::not_found("user"))?,
        ),
        None => None,
    };
    let env = Envelope::example(
        Uuid::new_v4(),
        t,
        team.id,
        user.map(|u| (u.user_id, u.client_user_id)),
    );
    let published = s
        .store
        .publish(team.id, std::slice::from_ref(&env), Target::Subscribers)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ExamplePublished {
            event_id: env.id,
            event_type: env.event_type,
            deliveries: published.deliveries,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// 1–250, default 50.
    #[serde(default = "fifty")]
    #[param(minimum = 1, maximum = 250)]
    limit: i64,
    /// `pending`, `retrying`, `succeeded` or `exhausted`.
    #[serde(default)]
    #[param(schema_with = status_schema)]
    status: Option<String>,
}

/// A delivery status, one of [`DeliveryStatus`]'s.
fn status_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(DeliveryStatus::ALL.iter().map(|s| s.as_str())))
        .description(Some("Only deliveries with this status."))
        .build()
}

fn fifty() -> i64 {
    50
}

async fn team_endpoint(s: &AppState, team: Uuid, raw: &str) -> ApiResult<crate::store::Endpoint> {
    let id = parse_id(raw, "endpoint")?;
    s.store
        .get_endpoint(team, id)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    event_id: Uuid,
    event_type: String,
    created_at: String,
    /// `pending`, `retrying`, `succeeded` or `exhausted`.
    status: String,
    attempts: i64,
    last_status_code: Option<i64>,
    last_attempt_at: Option<String>,
    next_attempt_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    data: Vec<DeliveryView>,
}

/// The last deliveries to an endpoint, newest first.
#[utoipa::path(get, path = "/webhooks/endpoints/{id}/events", tag = "webhooks", params(("id" = Uuid, Path), LogQuery),
    responses((status = 200, description = "the endpoint's deliveries, newest first", body = DeliveryList)))]
pub async fn endpoint_events(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<DeliveryList>> {
    let ep = team_endpoint(&s, team.id, &id).await?;
    if !(1..=250).contains(&q.limit) {
        return Err(ApiError::validation("`limit` must be between 1 and 250"));
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(st) => Some(st.parse::<DeliveryStatus>().map_err(|_| {
            let all: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::validation(format!("`status` must be one of {}", all.join(", ")))
        })?),
    };
    let rows = s
        .store
        .list_endpoint_deliveries(team.id, ep.id, q.limit, status)
        .await?;
    let data = rows
        .into_iter()
        .map(|d| DeliveryView {
            event_id: d.event_id,
            event_type: d.event_type,
            created_at: format_ms(d.event_created_at),
            status: d.status.to_string(),
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_attempt_at: d.last_attempt_at.map(format_ms),
            next_attempt_at: d.next_attempt_at.map(format_ms),
        })
        .collect();
    Ok(Json(DeliveryList { data }))
}

/// One HTTP try, as the delivery log keeps it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    run_number: i64,
    /// `scheduled` (the worker) or `manual` (resend).
    trigger: String,
    attempted_at: String,
    url: String,
    request_headers: std::collections::BTreeMap<String, String>,
    response_status: Option<i64>,
    /// The first 8 KiB.
    response_body: Option<String>,
    duration_ms: i64,
    /// `timeout`, `connect`, `dns`, `tls`, `http` or `blocked`.
    error_kind: Option<String>,
    error_message: Option<String>,
    /// The process that made it (`host:pid`).
    worker: String,
}

fn attempt_view(a: &Attempt) -> AttemptView {
    AttemptView {
        run_number: a.run_number,
        trigger: a.trigger.to_string(),
        attempted_at: format_ms(a.attempted_at),
        url: a.url.clone(),
        request_headers: a.request_headers.clone(),
        response_status: a.response_status,
        response_body: a.response_body.clone(),
        duration_ms: a.duration_ms,
        error_kind: a.error_kind.map(|k| k.to_string()),
        error_message: a.error_message.clone(),
        worker: a.worker.clone(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDelivery {
    endpoint_id: Uuid,
    status: String,
    attempts: i64,
    last_status_code: Option<i64>,
    next_attempt_at: Option<String>,
    attempt_log: Vec<AttemptView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    id: Uuid,
    event_type: String,
    created_at: String,
    /// The envelope exactly as delivered.
    payload: Value,
    deliveries: Vec<EventDelivery>,
}

/// One event: its payload and, per endpoint, every attempt.
#[utoipa::path(get, path = "/webhooks/events/{event_id}", tag = "webhooks", params(("event_id" = Uuid, Path)),
    responses((status = 200, description = "the event and every attempt per endpoint", body = EventDetail)))]
pub async fn event_detail(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<EventDetail>> {
    let id = parse_id(&id, "event")?;
    let ev = s
        .store
        .get_event(team.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let deliveries = s.store.event_deliveries(team.id, id).await?;
    let payload: Value = serde_json::from_str(&ev.payload).map_err(ApiError::internal)?;
    let deliveries = deliveries
        .iter()
        .map(|d| EventDelivery {
            endpoint_id: d.endpoint_id,
            status: d.status.to_string(),
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            next_attempt_at: d.next_attempt_at.map(format_ms),
            attempt_log: d.attempt_log.iter().map(attempt_view).collect(),
        })
        .collect();
    Ok(Json(EventDetail {
        id: ev.id,
        event_type: ev.event_type,
        created_at: format_ms(ev.created_at),
        payload,
        deliveries,
    }))
}

/// A manual attempt of one event to one endpoint, now; answers with the attempt.
#[utoipa::path(post, path = "/webhooks/endpoints/{id}/events/{event_id}/resend", tag = "webhooks", params(("id" = Uuid, Path), ("event_id" = Uuid, Path)),
    responses((status = 200, description = "the attempt just made", body = AttemptView)))]
pub async fn resend(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path((id, event_id)): Path<(String, String)>,
) -> ApiResult<Json<AttemptView>> {
    let ep = team_endpoint(&s, team.id, &id).await?;
    let event_id = parse_id(&event_id, "event")?;
    let (delivery_id, attempts) = s
        .store
        .find_delivery(team.id, ep.id, event_id)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    let ev = s
        .store
        .get_event(team.id, event_id)
        .await?
        .ok_or_else(|| ApiError::not_found("event"))?;
    let attempt = s
        .worker
        .resend(&ep, delivery_id, attempts, event_id, &ev.payload)
        .await?;
    Ok(Json(attempt_view(&attempt)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// RFC 3339: deliveries created since then.
    #[schema(format = DateTime)]
    since: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    recovered: u64,
}

/// Re-queues every failed delivery to the endpoint since `since`.
#[utoipa::path(post, path = "/webhooks/endpoints/{id}/recover", tag = "webhooks", params(("id" = Uuid, Path)), request_body = RecoverRequest,
    responses((status = 202, description = "failed deliveries re-queued", body = Recovered)))]
pub async fn recover(
    State(s): State<AppState>,
    Auth(team): Auth,
    Path(id): Path<String>,
    Body(req): Body<RecoverRequest>,
) -> ApiResult<(StatusCode, Json<Recovered>)> {
    let ep = team_endpoint(&s, team.id, &id).await?;
    let since = parse_instant(&req.since, "since")?;
    let n = s.store.recover_deliveries(team.id, ep.id, since).await?;
    Ok((StatusCode::ACCEPTED, Json(Recovered { recovered: n })))
}
