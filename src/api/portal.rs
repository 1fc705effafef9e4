//! The webhook portal: a page a team hands its developers (like Svix's App Portal) to
//! manage endpoints, read the delivery log, re-run and recover deliveries, and watch
//! users' connections, without an API key.
//!
//! `POST /v1/portal/sessions` (API key only) returns a one-time link valid for a few
//! minutes. Opening it spends the code and sets an `HttpOnly`, `SameSite=Strict` session
//! cookie scoped to the team, then lands on `/portal/`. The page is static HTML and
//! script (in `portal/`) that calls the ordinary `/v1` API with that cookie, so every
//! action passes the same tenancy and validation rules as an API client's. A cookie
//! alone authenticates nothing: requests must also carry `X-Wearbridge-Portal: 1`, a
//! header another site's page cannot add without a CORS preflight we never grant (the
//! CSRF guard beside SameSite). The pages are served with a strict
//! Content-Security-Policy: no inline script or style, nothing from other origins.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Body, Principal};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::events::format_ms;
use crate::store::PortalSession;

/// The session cookie's name.
pub const COOKIE: &str = "wb_portal";
/// The header every portal request must carry (see the module doc).
pub const HEADER: &str = "x-wearbridge-portal";

const INDEX_HTML: &str = include_str!("portal/index.html");
const APP_JS: &str = include_str!("portal/app.js");
const APP_CSS: &str = include_str!("portal/app.css");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// How long the session lasts once the link is opened (default 1 h, at most 24 h).
    #[serde(default, deserialize_with = "super::whole::option")]
    #[schema(minimum = 60, maximum = 86400)]
    session_ttl_secs: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionLink {
    /// The one-time link to hand to the developer.
    url: String,
    /// The link works once, until then.
    expires_at: String,
    session_ttl_secs: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TeamView {
    id: Uuid,
    name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    team: TeamView,
    expires_at: String,
}

/// `POST /v1/portal/sessions`: a one-time portal link for the key's team.
#[utoipa::path(post, path = "/portal/sessions", tag = "portal", request_body(content = Option<CreateSession>, description = "optional"),
    responses((status = 201, description = "a one-time link to the webhook portal", body = SessionLink),
              (status = 403, description = "called from a portal session", body = crate::error::ErrorBody)))]
pub async fn create_session(
    State(s): State<AppState>,
    principal: Principal,
    body: Option<Body<CreateSession>>,
) -> ApiResult<(StatusCode, Json<SessionLink>)> {
    let Principal::ApiKey(team) = principal else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "portal sessions are created with an API key, not from the portal",
        ));
    };
    let req = body.map(|Body(b)| b).unwrap_or_default();
    let ttl = req.session_ttl_secs.unwrap_or(3600);
    if !(60..=86_400).contains(&ttl) {
        return Err(ApiError::validation(
            "session_ttl_secs: must be between 60 and 86400",
        ));
    }
    let code = crate::seal::random_token(32);
    let expires = s
        .store
        .create_portal_session(
            team.id,
            &code,
            s.config.portal_link_ttl_secs as i64 * 1000,
            ttl * 1000,
        )
        .await?;
    let url = format!("{}/portal/open/{code}", s.public_url.trim_end_matches('/'));
    Ok((
        StatusCode::CREATED,
        Json(SessionLink {
            url,
            expires_at: format_ms(expires),
            session_ttl_secs: ttl,
        }),
    ))
}

/// `GET /v1/portal/session`: whose portal this is, until when.
#[utoipa::path(get, path = "/portal/session", tag = "portal", security(("portal_session" = [])),
    responses((status = 200, description = "the session", body = SessionView), (status = 403, description = "called with an API key", body = crate::error::ErrorBody)))]
pub async fn session_info(session: PortalSession) -> Json<SessionView> {
    Json(SessionView {
        team: TeamView {
            id: session.team.id,
            name: session.team.name,
        },
        expires_at: format_ms(session.expires_at),
    })
}

/// `DELETE /v1/portal/session`: sign out.
#[utoipa::path(delete, path = "/portal/session", tag = "portal", security(("portal_session" = [])),
    responses((status = 204, description = "signed out"), (status = 403, description = "called with an API key", body = crate::error::ErrorBody)))]
pub async fn end_session(State(s): State<AppState>, session: PortalSession) -> ApiResult<Response> {
    s.store.end_portal_session(session.id).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("wb_portal=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(res)
}

/// `GET /portal/open/{code}`: spends the link and starts the browser's session.
pub async fn open(State(s): State<AppState>, Path(code): Path<String>) -> ApiResult<Response> {
    let token = crate::seal::random_token(32);
    let Some(expires_at) = s.store.open_portal_session(&code, &token).await? else {
        let page = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
                    content=\"width=device-width, initial-scale=1\"><title>Link expired · Webhook portal</title>\
                    <link rel=\"stylesheet\" href=\"/portal/app.css\"></head><body><main class=\"ended\">\
                    <h1>This portal link has expired or was already used</h1><p>Portal links work once and only for a \
                    few minutes. Ask for a new one from the app that sent you here.</p></main></body></html>";
        return Ok(page_response(
            StatusCode::GONE,
            "text/html; charset=utf-8",
            page.to_string(),
        ));
    };
    let max_age = ((expires_at - crate::now_ms()) / 1000).max(0);
    let secure = if s.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    let mut res = Redirect::to("/portal/").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

pub async fn index() -> Response {
    page_response(
        StatusCode::OK,
        "text/html; charset=utf-8",
        INDEX_HTML.to_string(),
    )
}

pub async fn app_js() -> Response {
    page_response(
        StatusCode::OK,
        "text/javascript; charset=utf-8",
        APP_JS.to_string(),
    )
}

pub async fn app_css() -> Response {
    page_response(
        StatusCode::OK,
        "text/css; charset=utf-8",
        APP_CSS.to_string(),
    )
}

pub async fn to_index() -> Redirect {
    Redirect::permanent("/portal/")
}

fn page_response(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The portal session token in a request's cookies, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; wb_portal=tok-en; b=2"),
        );
        assert_eq!(session_cookie(&h), Some("tok-en"));
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("wb_portalx=1; x_wb_portal=2"),
        );
        assert_eq!(session_cookie(&h), None);
        h.append(header::COOKIE, HeaderValue::from_static("wb_portal="));
        assert_eq!(session_cookie(&h), None);
    }
}
