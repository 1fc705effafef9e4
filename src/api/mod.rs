//! The `/v1` HTTP API (axum). Every route but `/health` needs `Authorization: Bearer
//! <key>` and sees only the key's team: another team's ids answer 404, exactly as ids
//! that do not exist, so existence does not leak. Bad input gets a JSON error with the
//! right status (400 malformed, 413 too large, 415 wrong type, 422 invalid), never a panic.

mod connect;
mod data;
mod endpoints;
mod events;
mod link_page;
mod portal;
mod stats;
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
        .route("/webhooks/events/{event_id}", get(events::event_detail))
        .route("/webhooks/stats", get(stats::stats))
        .route("/portal/sessions", post(portal::create_session))
        .route("/portal/session", get(portal::session_info).delete(portal::end_session));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/portal", get(portal::to_index))
        .route("/portal/", get(portal::index))
        .route("/portal/app.js", get(portal::app_js))
        .route("/portal/app.css", get(portal::app_css))
        .route("/portal/open/{code}", get(portal::open))
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

/// Who is calling: a team's API key, or a webhook-portal session (a cookie plus the
/// portal header, see [`portal`]). A bearer key is tried first when one is sent.
pub enum Principal {
    ApiKey(Team),
    Portal(crate::store::PortalSession),
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            let key = header
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .ok_or_else(ApiError::unauthorized)?;
            return match state.store.team_for_key(key).await? {
                Some(team) => Ok(Principal::ApiKey(team)),
                None => Err(ApiError::unauthorized()),
            };
        }
        let token = portal::session_cookie(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        // The cookie rides along on any request to this origin, even one another site's
        // page triggers; the header cannot, so without it the cookie counts for nothing.
        if parts.headers.get(portal::HEADER).and_then(|v| v.to_str().ok()) != Some("1") {
            return Err(ApiError::unauthorized());
        }
        match state.store.portal_session(token).await? {
            Some(session) => Ok(Principal::Portal(session)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// The team the request acts for, whoever authenticated it.
pub struct Auth(pub Team);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(match Principal::from_request_parts(parts, state).await? {
            Principal::ApiKey(team) => Auth(team),
            Principal::Portal(session) => Auth(session.team),
        })
    }
}

/// A webhook-portal session; API keys are refused (the routes that take it manage the
/// session itself).
impl FromRequestParts<AppState> for crate::store::PortalSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::Portal(session) => Ok(session),
            Principal::ApiKey(_) => Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this route is for webhook-portal sessions")),
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

/// An optional JSON body: absent when the request has no `Content-Type` (e.g. an empty
/// POST), refused like [`Body`] when present but bad.
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        match <Json<T> as axum::extract::OptionalFromRequest<S>>::from_request(req, state).await {
            Ok(v) => Ok(v.map(|Json(v)| Body(v))),
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
