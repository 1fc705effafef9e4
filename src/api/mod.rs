//! The `/v1` HTTP API (axum). Every route but `/health` needs `Authorization: Bearer
//! <key>` and sees only the key's team: another team's ids answer 404, exactly as ids
//! that do not exist, so existence does not leak. Bad input gets a JSON error with the
//! right status (400 malformed, 413 too large, 415 wrong type, 422 invalid), never a panic.

mod connect;
mod data;
mod endpoints;
mod events;
mod link_page;
mod users;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::Team;

pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let v1 = Router::new()
        .route("/user", post(users::create).get(users::list))
        .route("/user/resolve/{client_user_id}", get(users::resolve))
        .route("/user/{user_id}", get(users::get).delete(users::delete))
        .route("/user/{user_id}/providers", get(connect::user_connections))
        .route("/user/{user_id}/refresh", post(connect::refresh))
        .route("/user/{user_id}/{provider}", axum::routing::delete(connect::deregister))
        .route("/providers", get(connect::list_providers))
        .route("/link/token", post(connect::create_link_token))
        .route("/link/{token}", get(connect::open_link))
        .route("/link/{token}/{provider}", get(connect::open_link_provider))
        .route("/oauth/callback/{provider}", get(connect::callback))
        .route("/summary/{resource}/{user_id}", get(data::summary))
        .route("/timeseries/{user_id}/{resource}", get(data::timeseries))
        .route("/event-types", get(events::event_types))
        .route("/events/example", post(events::publish_example))
        .route("/webhooks/endpoints", post(endpoints::create).get(endpoints::list))
        .route(
            "/webhooks/endpoints/{id}",
            get(endpoints::get).patch(endpoints::update).delete(endpoints::delete),
        )
        .route("/webhooks/endpoints/{id}/secret", get(endpoints::secret))
        .route("/webhooks/endpoints/{id}/secret/rotate", post(endpoints::rotate_secret))
        .route("/webhooks/endpoints/{id}/test", post(endpoints::send_test))
        .route("/webhooks/endpoints/{id}/events", get(events::endpoint_events))
        .route("/webhooks/endpoints/{id}/events/{event_id}/resend", post(events::resend))
        .route("/webhooks/endpoints/{id}/recover", post(events::recover))
        .route("/webhooks/events/{event_id}", get(events::event_detail));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .nest("/v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.delivery_counts().await.map_err(ApiError::from)?;
    Ok(Json(json!({"status": "ok"})))
}

/// Prometheus text exposition; unauthenticated like `/health` (it carries counts only,
/// no team data), so keep it on a private network or behind the proxy's auth.
async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Result<impl axum::response::IntoResponse, ApiError> {
    let text = state.metrics.render(&state.store).await?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
}

/// The team whose API key authorised the request.
pub struct Auth(pub Team);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let key = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        match state.store.team_for_key(key).await? {
            Some(team) => Ok(Auth(team)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// A JSON body whose rejections are API errors.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        _ => "invalid_json",
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "request body is too large".to_string(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "expected `Content-Type: application/json`".to_string(),
        _ => r.body_text(),
    };
    ApiError::new(status, code, message)
}

/// Query parameters whose rejections are API errors.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::bad_request(r.body_text())
}

/// An id from the path: anything that is not a UUID cannot name a resource, so 404.
pub fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what))
}

/// An instant from input: RFC 3339.
pub fn parse_instant(raw: &str, field: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::validation(format!("`{field}` must be an RFC 3339 instant, e.g. 2026-11-20T00:00:00Z")))
}

/// Serde helper: tells an absent field (None) from an explicit null (Some(None)).
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}
