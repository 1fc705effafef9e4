//! The `/v1` HTTP API (axum), documented at `/openapi.json` ([`openapi`]), and beside it
//! the Junction-compatible `/v2` ([`vital`]), a mapping over the same handlers. Every
//! route but the browser's connect-flow pages needs the team key, as
//! `Authorization: Bearer <key>` or `x-vital-api-key: <key>` (or a webhook-portal
//! session, see [`portal`]), and sees only its team: another team's ids
//! answer 404, exactly as ids that do not exist, so existence does not leak. Bad input
//! gets a JSON error with the right status (400 malformed, 413 too large, 415 wrong type,
//! 422 invalid), never a panic. Outside `/v1`: `/health`, `/metrics`, `/openapi.json`
//! and the portal's pages.

mod connect;
mod data;
mod endpoints;
mod events;
mod link_page;
pub mod openapi;
pub mod portal;
mod push;
mod stats;
mod users;
pub mod vital;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;
use crate::store::Team;

/// The gateway's routes: the documented `/v1` API, the pages and the operational ones.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    let (documented, spec) = documented().split_for_parts();
    let spec = openapi::to_json(&openapi::finish(spec)).to_string();
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                std::future::ready((
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    spec,
                ))
            }),
        )
        .route("/portal", get(portal::to_index))
        .route("/portal/", get(portal::index))
        .route("/portal/app.js", get(portal::app_js))
        .route("/portal/app.css", get(portal::app_css))
        .route("/portal/open/{code}", get(portal::open))
        .merge(documented)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(move |req, next| {
            guard_input(req, next, limit)
        }))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// What every request passes before its handler, and every error after it:
/// - no NUL character anywhere in the input (PostgreSQL cannot store one in text, and
///   no identifier or URL needs one): 400 in the URL, 422 in a JSON body;
/// - every JSON body is an object, as the document says (serde would take an array
///   for a struct, field by field): 422 otherwise;
/// - every error leaves in the API's JSON shape, including the plain-text rejections
///   of the framework itself (an undecodable path, say).
async fn guard_input(
    req: Request,
    next: axum::middleware::Next,
    limit: usize,
) -> axum::response::Response {
    let junction = req.uri().path().starts_with("/v2/");
    let in_query = req.method() == axum::http::Method::GET;
    let res = guard(req, next, limit).await;
    if junction {
        // The `/v2` API answers every error in Junction's shape, whoever raised it.
        return vital::junction_errors(res, in_query).await;
    }
    res
}

async fn guard(
    req: Request,
    next: axum::middleware::Next,
    limit: usize,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00")) {
        return ApiError::bad_request("NUL characters (%00) are not allowed in URLs")
            .into_response();
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body is too large",
            )
            .into_response()
        }
    };
    if has_json_nul(&bytes) {
        return ApiError::validation("strings must not contain NUL characters (\\u0000)")
            .into_response();
    }
    let json = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if json && bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the request body must be a JSON object",
        )
        .into_response();
    }
    let res = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    json_errors(res).await
}

/// True when JSON text holds the escape `\u0000` (a NUL inside a string); a literal
/// backslash before `u0000` (`\\u0000`) is not one.
fn has_json_nul(json: &[u8]) -> bool {
    json.windows(6).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(b"\\u0000")
            && json[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 0
    })
}

/// An error response that is not JSON (nor one of our HTML pages) rewritten as one.
async fn json_errors(res: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = res.status();
    let content_type = res
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if status.as_u16() < 400
        || content_type.starts_with("application/json")
        || content_type.starts_with("text/html")
    {
        return res;
    }
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "validation_error",
        s if s.is_server_error() => {
            return ApiError::internal(format!("{s} from the framework")).into_response()
        }
        _ => "error",
    };
    let text = axum::body::to_bytes(res.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text.trim().to_string()
    };
    ApiError::new(status, code, message).into_response()
}

/// The OpenAPI document, as `/openapi.json` serves it.
pub fn openapi_document() -> serde_json::Value {
    openapi::to_json(&openapi::finish(documented().split_for_parts().1))
}

/// Every route the document describes, each registered with its documentation (see
/// [`openapi`]): the `/v1` API and the operational `/health` and `/metrics`.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(metrics))
        .nest("/v1", v1())
        .nest("/v2", vital::routes())
}

/// Every `/v1` route, each registered with its documentation (see [`openapi`]).
fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(users::create, users::list))
        .routes(routes!(users::resolve))
        .routes(routes!(users::get, users::delete))
        .routes(routes!(connect::user_connections))
        .routes(routes!(connect::refresh))
        .routes(routes!(connect::deregister))
        .routes(routes!(connect::backfill))
        .routes(routes!(connect::list_providers))
        .routes(routes!(push::handshake, push::receive))
        .routes(routes!(connect::create_link_token))
        .routes(routes!(connect::open_link))
        .routes(routes!(connect::open_link_provider))
        .routes(routes!(connect::callback))
        .routes(routes!(data::summary))
        .routes(routes!(data::timeseries))
        .routes(routes!(data::devices))
        .routes(routes!(events::event_types))
        .routes(routes!(events::publish_example))
        .routes(routes!(endpoints::create, endpoints::list))
        .routes(routes!(
            endpoints::get,
            endpoints::update,
            endpoints::delete
        ))
        .routes(routes!(endpoints::secret))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(endpoints::send_test))
        .routes(routes!(events::endpoint_events))
        .routes(routes!(events::resend))
        .routes(routes!(events::recover))
        .routes(routes!(events::event_detail))
        .routes(routes!(stats::stats))
        .routes(routes!(portal::create_session))
        .routes(routes!(portal::session_info, portal::end_session))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Liveness {
    /// Always `ok`: the gateway answers and its database too.
    status: &'static str,
}

/// Liveness: the gateway is up and reaches its database. No key needed.
#[utoipa::path(get, path = "/health", tag = "operations", security(()), responses((status = 200, description = "up", body = Liveness)))]
async fn health(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<Liveness>, ApiError> {
    state
        .store
        .delivery_counts()
        .await
        .map_err(ApiError::from)?;
    Ok(Json(Liveness { status: "ok" }))
}

/// Prometheus text exposition.
///
/// Unauthenticated like `/health` (it carries counts only, no team data), so keep it on
/// a private network or behind the proxy's auth.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String)))]
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let text = state.metrics.render(&state.store).await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// Who is calling: a team's API key (as a bearer token, or in Junction's
/// `x-vital-api-key` header), or a webhook-portal session (a cookie plus the portal
/// header, see [`portal`]). A bearer key is tried first when one is sent.
pub enum Principal {
    ApiKey(Team),
    Portal(crate::store::PortalSession),
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            let key = header
                .to_str()
                .ok()
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                })
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .ok_or_else(ApiError::unauthorized)?;
            return match state.store.team_for_key(key).await? {
                Some(team) => Ok(Principal::ApiKey(team)),
                None => Err(ApiError::unauthorized()),
            };
        }
        // Junction's SDKs send the key in their own header; it is the same team key.
        if let Some(header) = parts.headers.get(vital::API_KEY_HEADER) {
            let key = header
                .to_str()
                .ok()
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
        if parts
            .headers
            .get(portal::HEADER)
            .and_then(|v| v.to_str().ok())
            != Some("1")
        {
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

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
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

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::Portal(session) => Ok(session),
            Principal::ApiKey(_) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this route is for webhook-portal sessions",
            )),
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
/// POST) or the body is `null`, refused like [`Body`] when present but bad.
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        // A JSON `null` is no body too, as the document's `oneOf: [null, …]` says.
        match <Json<Option<T>> as axum::extract::OptionalFromRequest<S>>::from_request(req, state)
            .await
        {
            Ok(v) => Ok(v.and_then(|Json(v)| v).map(Body)),
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
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "expected `Content-Type: application/json`".to_string()
        }
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
        .map_err(|_| {
            ApiError::validation(format!(
                "`{field}` must be an RFC 3339 instant, e.g. 2026-11-20T00:00:00Z"
            ))
        })
}

/// Serde helpers for integer fields that also take a JSON number with a zero fraction
/// (`60.0`): JSON Schema counts it as an integer, and clients whose numbers are floats
/// send it. Anything else that is not a whole number in range is refused.
pub mod whole {
    use serde::{Deserialize, Deserializer};

    fn to_i64<E: serde::de::Error>(n: serde_json::Number) -> Result<i64, E> {
        if let Some(i) = n.as_i64() {
            return Ok(i);
        }
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
                Ok(f as i64)
            }
            _ => Err(E::custom(format!(
                "invalid value: {n}, expected a whole number"
            ))),
        }
    }

    /// An optional integer.
    pub fn option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<serde_json::Number>::deserialize(d)?
            .map(to_i64)
            .transpose()
    }

    /// An optional integer that may be set to null: absent is None, null is Some(None).
    pub fn double_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        option(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::has_json_nul;

    #[test]
    fn a_nul_escape_is_found_but_an_escaped_backslash_is_not_one() {
        assert!(has_json_nul(br#"{"a":"x\u0000y"}"#));
        assert!(has_json_nul(br#"{"a":"\U0000"}"#));
        assert!(
            has_json_nul(br#"{"a":"\\\u0000"}"#),
            "an escaped backslash, then a NUL"
        );
        assert!(
            !has_json_nul(br#"{"a":"\\u0000"}"#),
            "the six characters \\u0000, no NUL"
        );
        assert!(!has_json_nul(br#"{"a":"u0000 \u0001"}"#));
    }
}
